"""`make demo`: sample repos, a local Hub (`batuta hf serve`), and batuta's commands against it.

Works offline: everything is generated in a temporary folder and served on a loopback port.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

MiB = 1024 * 1024
TOKEN = "hf_demo_write_token_0123456789abcdefgh"
BATUTA = [sys.executable, "-m", "cli"]


def write_repo(root: Path, kind: str, repo_id: str, files: dict[str, bytes], meta: dict[str, object]) -> None:
    """Repos are plain folders: `<root>/<kind>s/<ns>/<name>/`, metadata in `<name>.meta.json`."""
    ns, name = repo_id.split("/")
    folder = root / f"{kind}s" / ns / name
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    (root / f"{kind}s" / ns / f"{name}.meta.json").write_text(json.dumps(meta))


def generate(root: Path) -> None:
    rnd = os.urandom
    config = json.dumps({"architectures": ["BertForMaskedLM"], "model_type": "bert"}).encode()
    write_repo(
        root,
        "model",
        "acme/tiny-bert",
        {
            "config.json": config,
            "model.safetensors": rnd(24 * MiB),
            "tokenizer.json": b'{"model": {"vocab": {}}}',
        },
        {
            "pipeline_tag": "fill-mask",
            "library_name": "transformers",
            "downloads": 1200,
            "likes": 7,
            "license": "mit",
        },
    )
    write_repo(
        root,
        "model",
        "acme/llama-mini-GGUF",
        {
            "README.md": b"# llama-mini GGUF\n",
            "config.json": b"{}",
            "llama-mini.Q4_K_M.gguf": rnd(6 * MiB),
            "llama-mini.Q5_K_M.gguf": rnd(7 * MiB),
            "llama-mini.Q8_0.gguf": rnd(9 * MiB),
        },
        {"pipeline_tag": "text-generation", "downloads": 5400, "likes": 42, "license": "llama2"},
    )
    write_repo(
        root,
        "model",
        "acme/llama-mini",
        {"config.json": b"{}", "model.safetensors": rnd(2 * MiB), "pytorch_model.bin": rnd(MiB)},
        {"pipeline_tag": "text-generation", "downloads": 300, "likes": 3},
    )
    write_repo(root, "model", "acme/internal-model", {"config.json": b"{}"}, {"private": True})
    write_repo(
        root,
        "model",
        "acme/gated-llama",
        {"model.safetensors": rnd(MiB)},
        {"gated": "manual", "downloads": 90},
    )
    write_repo(
        root,
        "dataset",
        "acme/common-speech",
        {"data/train.csv": b"path,sentence\na.wav,hello\n" * 100, "README.md": b"# speech\n"},
        {"tags": ["task_categories:automatic-speech-recognition", "language:en"], "downloads": 800},
    )
    write_repo(
        root,
        "space",
        "acme/image-classifier",
        {"app.py": b"import gradio\n", "requirements.txt": b"gradio\n"},
        {"sdk": "gradio", "likes": 5},
    )
    (root / "tokens.json").write_text(json.dumps({TOKEN: {"user": "demo", "role": "write", "gated": True}}))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"demo: the server exited early (code {proc.returncode})")
        try:
            with urllib.request.urlopen(f"{url}/api/models?limit=1", timeout=2):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("demo: the server did not start within 30 s")


def run(env: dict[str, str], *args: str, expect_fail: bool = False) -> None:
    print(f"\n$ batuta {' '.join(args)}", flush=True)
    code = subprocess.run([*BATUTA, *args], env=env).returncode
    if (code != 0) != expect_fail:
        raise SystemExit(f"demo: 'batuta {' '.join(args)}' exited {code}")
    if expect_fail:
        print(f"(exit code {code}, as expected)", flush=True)


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="batuta-demo-"))
    root, home, work = tmp / "hub", tmp / "hf-home", tmp / "work"
    root.mkdir()
    home.mkdir()
    work.mkdir()
    generate(root)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([*BATUTA, "hf", "serve", "--root", str(root), "--port", str(port)])
    try:
        wait_ready(url, server)
        env = {**os.environ, "HF_ENDPOINT": url, "HF_HOME": str(home), "NO_COLOR": "1"}
        env.pop("HF_TOKEN", None)
        print(f"demo: local Hub at {url}, repos in {root}", flush=True)
        run(env, "hf", "tree")
        run(env, "hf", "tree", "--integration")
        run(env, "hf", "search", "model", "llama", "--sort", "downloads")
        run(env, "hf", "search", "dataset", "speech", "--task", "automatic-speech-recognition")
        run(env, "hf", "search", "space", "classifier")
        run(env, "hf", "info", "model", "acme/tiny-bert")
        run(env, "hf", "info", "model", "acme/llama-mini-GGUF")
        run(env, "hf", "info", "dataset", "acme/common-speech")
        run(env, "hf", "info", "model", "acme/internal-model", expect_fail=True)
        run(env, "--token", TOKEN, "hf", "info", "model", "acme/internal-model")
        run(env, "hf", "pull", "model", "acme/tiny-bert")
        run(env, "hf", "pull", "model", "acme/tiny-bert")  # second time: nothing to fetch
        run(
            env,
            "hf",
            "pull",
            "model",
            "acme/llama-mini-GGUF",
            "--quantization",
            "Q4_K_M",
            "-o",
            str(work / "gguf"),
        )
        run(env, "hf", "pull", "model", "acme/llama-mini", "--dry-run")
        run(env, "hf", "pull", "model", "acme/gated-llama", expect_fail=True)
        push_demo(env, work)
        print("\ndemo: done", flush=True)
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


def push_demo(env: dict[str, str], work: Path) -> None:
    folder = work / "my-model"
    folder.mkdir()
    (folder / "config.json").write_text(
        json.dumps({"architectures": ["BertForSequenceClassification"], "model_type": "bert"})
    )
    (folder / "model.safetensors").write_bytes(os.urandom(12 * MiB))
    (folder / "eval_results.json").write_text(json.dumps({"eval_accuracy": 0.91, "eval_loss": 0.27}))
    push = ["--token", TOKEN, "hf", "push", "model", str(folder), "--repo", "demo/my-classifier"]
    run(env, *push, "--license", "mit")
    # The same command again: nothing changed, so nothing is sent and no commit is made.
    run(env, *push, "--license", "mit")
    run(env, "--token", TOKEN, "hf", "pull", "model", "demo/my-classifier", "-o", str(work / "pulled"))


if __name__ == "__main__":
    main()
