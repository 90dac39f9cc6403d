from __future__ import annotations

import gzip
import io
import json
import lzma
import pickle
import random
import string
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import pytest

from engine import _secretfiles as files_mod
from engine import _secrets as secrets_mod
from engine._secretfiles import scan_folder
from engine._secrets import (
    BINARY_SNIFF_BYTES,
    SCAN_BLOCK_BYTES,
    Finding,
    mask,
    scan_name,
    scan_text,
)
from tests.archives import tar_bytes, zip_bytes

# Fake credentials are assembled at run time so that this file itself never holds one verbatim.
_RNG = random.Random(1234)


def fake(prefix: str, n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    body = "".join(_RNG.choice(alphabet) for _ in range(n - 3)) + "aZ7"
    return prefix + body


HF_TOKEN = fake("hf" + "_", 34)
ORG_TOKEN = fake("api" + "_org_", 34)
AKIA_ID = "AKIA" + "Q7ZX3MPLK4RTYW2N"
AWS_SECRET = fake("", 40, string.ascii_letters + string.digits + "/+")
GH_TOKEN = fake("ghp" + "_", 36)
GH_PAT = fake("github" + "_pat_", 82, string.ascii_letters + string.digits + "_")
SLACK_TOKEN = "xox" + "b-123456789012-1234567890123-" + fake("", 24)
SLACK_HOOK = "https://hooks.slack" + ".com/services/T0123ABCD/B0456EFGH/" + fake("", 24)
OPENAI_KEY = fake("sk" + "-proj-", 64)
GOOGLE_KEY = fake("AI" + "za", 35, string.ascii_letters + string.digits + "_-")
STRIPE_KEY = fake("sk" + "_live_", 24)
PEM = "-----BEGIN RSA PRIVATE" + " KEY-----\nMIIEpAIBAAKCAQEA7\n-----END RSA PRIVATE KEY-----\n"


def kinds(findings: list[Finding]) -> list[str]:
    return [f.kind for f in findings]


# --- masking ---------------------------------------------------------------------------------


def test_mask_shows_only_a_prefix_and_the_length() -> None:
    assert mask("hf_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789", 5) == "hf_Ab…(39 chars)"
    assert mask("hunter22", 2) == "…(8 chars)"  # short secrets reveal nothing
    assert mask("x" * 20) == "…(20 chars)"


# --- by name ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        (".env", "env file"),
        ("app/.env.local", "env file"),
        (".env.production", "env file"),
        ("prod.env", "env file"),
        ("certs/server.pem", "private key file"),
        ("tls.key", "private key file"),
        ("id_rsa", "SSH private key file"),
        ("backup/id_ed25519", "SSH private key file"),
        ("id_ecdsa", "SSH private key file"),
        ("id_dsa", "SSH private key file"),
        ("store.p12", "key store"),
        ("cert.pfx", "key store"),
        ("release.keystore", "key store"),
        ("android.jks", "key store"),
        ("credentials.json", "credentials file"),
        ("client_secret_1234.apps.json", "credentials file"),
        (".netrc", "credentials file"),
        ("_netrc", "credentials file"),
        (".npmrc", "credentials file"),
        (".pypirc", "credentials file"),
        (".git-credentials", "credentials file"),
        ("home/.aws/credentials", "AWS credentials file"),
        ("credentials", "AWS credentials file"),  # copied out of .aws/
        ("deploy/credentials", "AWS credentials file"),
        ("credentials.yml", "credentials file"),
        ("config/credentials.yaml", "credentials file"),
        ("secrets.json", "credentials file"),
        ("secrets.yml", "credentials file"),
        ("secrets.yaml", "credentials file"),
        (".streamlit/secrets.toml", "credentials file"),
        (".pgpass", "credentials file"),
        (".htpasswd", "credentials file"),
        (".docker/config.json", "Docker credentials file"),
        (".kube/config", "Kubernetes credentials file"),
        ("kubeconfig", "Kubernetes credentials file"),
        ("ops/kubeconfig.yaml", "Kubernetes credentials file"),
        ("id_ed25519_sk", "SSH private key file"),
        # Backup copies hold what the original does.
        ("id_rsa.bak", "SSH private key file"),
        ("keys/id_ed25519.old", "SSH private key file"),
        ("id_rsa~", "SSH private key file"),
        ("id_ecdsa.orig", "SSH private key file"),
        ("credentials.json.bak", "credentials file"),
        (".netrc~", "credentials file"),
        (".env.old", "env file"),
        (".kube/config.backup", "Kubernetes credentials file"),
        ("service-account-prod.json", "service account key"),
        ("Service-Account.JSON", "service account key"),
        ("notebooks/kaggle.json", "Kaggle API key file"),
        (".config/gcloud/application_default_credentials.json", "Google Cloud user credentials file"),
        (".s3cfg", "S3 credentials file"),
        (".databrickscfg", "Databricks credentials file"),
        (".vault-token", "Vault token file"),
        (".my.cnf", "MySQL credentials file"),
    ],
)
def test_credential_file_names_are_flagged(path: str, kind: str) -> None:
    assert scan_name(path) == Finding(path, None, kind, "")


@pytest.mark.parametrize(
    "path",
    [
        ".env.example",
        ".env.sample",
        ".env.template",
        "config.json",
        "id_rsa.pub",
        "id_rsa.pub.bak",  # a public key, backed up
        "id_rsa.pub~",
        "id_rsa-cert.pub",
        "tokenizer.json",
        "tokenizer.json.bak",
        "config.json~",
        "secrets.py",  # code that reads secrets, scanned by content
        "credentials.md",
        "kubeconfig.py",
        "kaggle.py",
        "my.cnf",  # the server's config, not a client's login
        # Service account keys carry any name (`<project>-<hex>.json`); their content gives them
        # away (test_a_service_account_key_is_found_by_its_content), so `*key.json` is not a rule.
        "gcloud-key.json",
        "key.json",
        "monkey.json",
        ".bak",
        "special_tokens_map.json",
        "model.safetensors",
        "keys.txt",
        "aws/credentials.md",
        "config/config.json",
        "environment.yml",
    ],
)
def test_ordinary_file_names_are_not_flagged(path: str) -> None:
    assert scan_name(path) is None


# --- by content: positives -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "text", "kind", "secret"),
    [
        ("notebook.ipynb", f'"login(token=\\"{HF_TOKEN}\\")"', "Hugging Face token", HF_TOKEN),
        ("README.md", f"org token {ORG_TOKEN}", "Hugging Face token", ORG_TOKEN),
        ("deploy.md", f"id {AKIA_ID} here", "AWS access key id", AKIA_ID),
        ("config", f"aws_secret_access_key = {AWS_SECRET}", "AWS secret access key", AWS_SECRET),
        ("ci.json", f'{{"gh": "{GH_TOKEN}"}}', "GitHub token", GH_TOKEN),
        ("notes.txt", f"pat: {GH_PAT}", "GitHub token", GH_PAT),
        ("bot.py", f'client = WebClient(token="{SLACK_TOKEN}")', "Slack token", SLACK_TOKEN),
        ("alerts.json", f'{{"url": "{SLACK_HOOK}"}}', "Slack webhook URL", SLACK_HOOK),
        ("eval.py", f'openai.api_key = "{OPENAI_KEY}"', "OpenAI-style API key", OPENAI_KEY),
        ("maps.js", f"const k = '{GOOGLE_KEY}';", "Google API key", GOOGLE_KEY),
        ("pay.rb", f"Stripe.api_key = '{STRIPE_KEY}'", "Stripe live key", STRIPE_KEY),
        (
            "settings.txt",
            "postgres://admin:Tr0ub4dor3x@db.internal:5432/app",
            "password in URL",
            "Tr0ub4dor3x",
        ),
    ],
)
def test_token_shapes_are_found_in_any_file(path: str, text: str, kind: str, secret: str) -> None:
    data = ("first line\n" + text + "\nlast line\n").encode()
    findings = scan_text(path, data)
    assert kinds(findings) == [kind]
    (finding,) = findings
    assert finding.path == path and finding.line == 2
    assert secret not in finding.excerpt and secret not in finding.describe()
    assert finding.excerpt.endswith(f"({len(secret)} chars)")


def test_a_service_account_key_is_found_by_its_content() -> None:
    key = {
        "type": "service_account",
        "project_id": "acme-ml",
        "private_key_id": "0123456789abcdef",
        "private_key": "-----BEGIN PRIVATE"
        + " KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n",
        "client_email": "trainer@acme-ml.iam.gserviceaccount.com",
    }
    data = json.dumps(key, indent=2).encode()
    assert scan_name("gcloud-key.json") is None
    assert [(f.line, f.kind) for f in scan_text("gcloud-key.json", data)] == [(5, "private key")]


def test_private_key_block_reports_the_header_only() -> None:
    findings = scan_text("deploy/key.txt", ("# deploy key\n" + PEM).encode())
    assert findings == [Finding("deploy/key.txt", 2, "private key", "-----BEGIN RSA PRIVATE" + " KEY-----")]
    assert "MIIE" not in findings[0].describe()
    openssh = "-----BEGIN OPENSSH PRIVATE" + " KEY-----\nb3Blbn\n"
    assert kinds(scan_text("k", openssh.encode())) == ["private key"]


def test_hf_token_excerpt_format() -> None:
    (finding,) = scan_text(".env", f"HF_TOKEN={HF_TOKEN}\n".encode())
    assert finding.kind == "Hugging Face token"  # the token rule wins over the TOKEN= line
    assert finding.excerpt == f"{HF_TOKEN[:5]}…(37 chars)"
    assert finding.describe() == f".env:1: Hugging Face token ({HF_TOKEN[:5]}…(37 chars))"


def test_env_style_assignments_in_env_config_and_scripts() -> None:
    env = b"# local settings\nDB_PASSWORD=Sup3rS3cretPw\nexport SECRET_KEY='k3y-f0r-django'\nDEBUG=1\n"
    findings = scan_text(".env.local", env)
    assert [(f.line, f.kind) for f in findings] == [(2, "password assignment"), (3, "secret assignment")]
    assert findings[0].excerpt == "DB_PASSWORD=…(13 chars)"
    assert "Sup3r" not in findings[0].describe()

    yaml_cfg = b"database:\n  host: db\n  db_pass: hunter2hunter2  # rotate me\n"
    assert [(f.line, f.kind) for f in scan_text("conf/app.yaml", yaml_cfg)] == [(3, "password assignment")]
    shell = b'#!/bin/sh\nexport OPENAI_API_KEY="abc123def456ghi"\n'
    assert kinds(scan_text("run.sh", shell)) == ["secret assignment"]
    ini = b"[server]\npassword = correct-horse-battery\n"
    assert kinds(scan_text("setup.cfg", ini)) == ["password assignment"]
    docker = b"FROM python:3.11\nENV API_KEY=abcdef123456\n"
    assert kinds(scan_text("Dockerfile", docker)) == ["secret assignment"]
    code = b'API_KEY = "abcdef123456"\nPASSWORD = os.environ["PASSWORD"]\n'
    assert [(f.line, f.kind) for f in scan_text("app.py", code)] == [(1, "secret assignment")]


# --- by content: negatives (a normal model folder) -------------------------------------------


def realistic_tokenizer_json() -> bytes:
    """A tokenizer.json shaped like the ones transformers writes, with a big BPE vocabulary."""
    rng = random.Random(7)
    pieces = ["token", "Ġtoken", "Ġpassword", "Ġsecret", "_key", "api", "Ġapi_key", "hf", "hf_", "sk", "-",
              "ghp", "xoxb", "AKIA", "BEGIN", "PRIVATE", "ĠKEY", "-----", "Ġ=", "PASSWORD", "=", "ĠAIza"]  # fmt: skip
    for _ in range(5000):
        word = "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(2, 9)))
        pieces.append(rng.choice(["", "Ġ", "##"]) + word)
    vocab = {p: i for i, p in enumerate(dict.fromkeys(pieces))}
    doc = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": 0, "content": "<pad>", "single_word": False, "lstrip": False, "special": True},
            {"id": 1, "content": "</s>", "single_word": False, "lstrip": False, "special": True},
            {"id": 2, "content": "<unk>", "single_word": False, "lstrip": False, "special": True},
        ],
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True},
        "post_processor": {"type": "TemplateProcessing", "single": [{"Sequence": {"id": "A", "type_id": 0}}]},
        "decoder": {"type": "ByteLevel"},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": "<unk>",
            "vocab": vocab,
            "merges": ["Ġ t", "Ġt oken", "p assword", "h f", "s k", "A K", "AK IA"],
        },
    }
    return json.dumps(doc, indent=2, ensure_ascii=False).encode()


MODEL_FOLDER: dict[str, bytes] = {
    "config.json": json.dumps(
        {
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "vocab_size": 32000,
            "pad_token_id": 0,
            "bos_token_id": 1,
            "eos_token_id": 2,
            "torch_dtype": "bfloat16",
        },
        indent=2,
    ).encode(),  # fmt: skip
    "tokenizer.json": realistic_tokenizer_json(),
    "special_tokens_map.json": json.dumps(
        {
            "pad_token": "<pad>",
            "eos_token": "</s>",
            "bos_token": "<s>",
            "unk_token": {"content": "<unk>", "lstrip": False, "normalized": False, "rstrip": False},
        },
        indent=2,
    ).encode(),  # fmt: skip
    "tokenizer_config.json": json.dumps(
        {
            "add_bos_token": True,
            "model_max_length": 4096,
            "pad_token": "<pad>",
            "sep_token": "[SEP]",
            "tokenizer_class": "LlamaTokenizer",
            "use_auth_token": None,
            "token": None,
            "chat_template": "{% for m in messages %}{{ m['role'] + ': ' + m['content'] + eos_token }}{% endfor %}",
        },
        indent=2,
    ).encode(),  # fmt: skip
    "generation_config.json": b'{\n  "bos_token_id": 1,\n  "eos_token_id": 2,\n  "max_new_tokens": 256\n}\n',
    "README.md": (
        b"# My model\n\nLog in first: `huggingface-cli login --token $HF_TOKEN`, or set\n"
        b"`HF_TOKEN=hf_xxx` in your environment. The tokenizer adds a pad token.\n"
        b"Clone with `git clone https://user:<your-token>@huggingface.co/acme/model`.\n"
        b"The API key and password are never stored.\n"
    ),
    "training_args.yaml": (
        b"output_dir: ./out\nhub_token: null\npush_to_hub_token: <PUSH_TO_HUB_TOKEN>\n"
        b"hub_private_repo: false\neval_steps: 500\nmax_pass: 3\nnum_passes: 1000\n"
        b"pad_token: <pad>\neos_token: </s>\nmlflow_password: ${oc.env:MLFLOW_PASSWORD}\n"
        b"wandb_api_key: ''\nsecret_key: changeme\napi_key: your-api-key-here\n"
    ),
    "train.py": (
        b"import os\nfrom huggingface_hub import login\n\n"
        b'token = os.environ["HF_TOKEN"]\napi_key = os.getenv("OPENAI_API_KEY")\n'
        b"password: str | None = None\nlogin(token=token)\n"
    ),
    ".env.example": b"HF_TOKEN=hf_your_token_here\nDB_PASSWORD=postgres\nSECRET_KEY=\n",
    "merges.txt": b"#version: 0.2\n\xc4\xa0 t\n\xc4\xa0t oken\np assword\n",
    "vocab.json": json.dumps({"password": 1, "hf_": 2, "api_key": 3, "sk-": 4, "PASSWORD=": 5}).encode(),
}


@pytest.mark.parametrize("name", sorted(MODEL_FOLDER))
def test_a_normal_model_folder_has_no_findings(name: str) -> None:
    assert scan_name(name) is None
    assert scan_text(name, MODEL_FOLDER[name]) == []


def test_lookalikes_are_not_tokens() -> None:
    samples = [
        "hf_hub_download(repo_id='x')",
        "hf_" + "abcdefghijklmnopqrstuvwxyzabcdefgh",  # one case only: an identifier, not a token
        "sk-" + "learn-is-a-python-library-for-machine-learning",
        "the AKIA" + "IOSFODNN7EXAMPLE key from the AWS docs",
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "xox" + "b-123",
        "https://user:password@example.com/",
    ]
    for text in samples:
        assert scan_text("notes.txt", text.encode()) == [], text


def test_assignments_are_ignored_outside_env_config_and_script_files() -> None:
    line = b"DB_PASSWORD=Sup3rS3cretPw\n"
    assert scan_text("notes.md", line) == []
    assert scan_text("data.json", line) == []
    assert kinds(scan_text("deploy.sh", line)) == ["password assignment"]


TOKENS = [(HF_TOKEN, "Hugging Face token"), (ORG_TOKEN, "Hugging Face token"), (AKIA_ID, "AWS access key id"),
          (GH_TOKEN, "GitHub token"), (GH_PAT, "GitHub token"), (SLACK_TOKEN, "Slack token"),
          (OPENAI_KEY, "OpenAI-style API key"), (GOOGLE_KEY, "Google API key"),
          (STRIPE_KEY, "Stripe live key")]  # fmt: skip


def torch_save(data_pkl: bytes) -> bytes:
    """What torch.save writes: an uncompressed zip holding the pickle as `archive/data.pkl`."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("archive/data.pkl", data_pkl)
    return buf.getvalue()


@pytest.mark.parametrize(("token", "kind"), TOKENS, ids=[kind for _, kind in TOKENS])
def test_tokens_in_a_protocol_0_pickle_are_found(tmp_path: Path, token: str, kind: str) -> None:
    # Protocol 0 writes a str as the opcode `V` and the text, on a line of its own: `Vhf_…`.
    args = pickle.dumps({"output_dir": "out", "hub_token": token}, protocol=0)
    alone = pickle.dumps(token, protocol=0)  # the str starts the pickle
    assert b"\nV" + token.encode() + b"\n" in args and alone.startswith(b"V" + token.encode())
    for data in (args, alone):
        found = scan_text("training_args.bin", data)
        assert kinds(found) == [kind] and token not in found[0].describe()
    # As binary data (a NUL in the first bytes, as in the zip torch.save writes): read as latin-1.
    rels = write(tmp_path, {"training_args.bin": torch_save(args), "token.pkl": b"\x00\n" + alone})
    assert [(f.path, f.kind.split(" in ")[0]) for f in scan_folder(tmp_path, rels)] == [
        ("training_args.bin", kind),
        ("token.pkl", kind),
    ]


@pytest.mark.parametrize(("token", "kind"), TOKENS, ids=[kind for _, kind in TOKENS])
def test_a_letter_before_a_token_hides_it_unless_it_is_a_v_starting_a_line(token: str, kind: str) -> None:
    for text in (f"xV{token}", f"a V{token}", f"\nW{token}", f"\nv{token}", f"\nVV{token}"):
        assert scan_text("notes.txt", text.encode()) == [], text
    assert [(f.line, f.kind) for f in scan_text("notes.txt", f"one\r\nV{token}\n".encode())] == [(2, kind)]


def test_undecodable_bytes_do_not_break_scanning() -> None:
    data = b"\xff\xfe garbage\n" + f"token {HF_TOKEN}\n".encode()
    assert [(f.line, f.kind) for f in scan_text("x.txt", data)] == [(2, "Hugging Face token")]


# --- folders ---------------------------------------------------------------------------------


def write(root: Path, files: dict[str, bytes]) -> list[str]:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return list(files)


def test_scan_folder_clean_model_folder(tmp_path: Path) -> None:
    rels = write(tmp_path, {**MODEL_FOLDER, "model.safetensors": b"\x00" * 64 + b"hf_hub_download" * 100})
    assert scan_folder(tmp_path, rels) == []


def test_scan_folder_reports_names_and_contents(tmp_path: Path) -> None:
    rels = write(
        tmp_path,
        {
            "config.json": MODEL_FOLDER["config.json"],
            ".env": f"HF_TOKEN={HF_TOKEN}\n".encode(),
            "keys/id_rsa": PEM.encode(),
            "scripts/push.sh": f"#!/bin/sh\nexport GITHUB_TOKEN={GH_TOKEN}\n".encode(),
        },
    )
    found = [(f.path, f.line, f.kind) for f in scan_folder(tmp_path, rels)]
    assert found == [
        (".env", None, "env file"),
        (".env", 1, "Hugging Face token"),
        ("keys/id_rsa", None, "SSH private key file"),
        ("keys/id_rsa", 1, "private key"),
        ("scripts/push.sh", 2, "GitHub token"),
    ]


def test_binary_files_are_searched_for_token_shapes_only(tmp_path: Path) -> None:
    token_line = f"\ntoken = {HF_TOKEN}\n".encode()
    rels = write(
        tmp_path,
        {
            "blob.dat": b"\x00binary" + token_line,
            "late-nul.txt": b"a" * BINARY_SNIFF_BYTES + b"\x00" + token_line,  # text up to the sniff
            "pytorch_model.bin": b"PK\x03\x04\x14\x00" + token_line,  # torch.save: a zip
            "model.gguf": b"GGUF\x03\x00\x00\x00" + token_line,
            "model.onnx": b"\x08\x07\x12\x07pytorch\x8a\x01" + token_line,  # no NUL, not UTF-8
            "notes.bin": token_line,  # a text file under a weights name is text
            "latin1.txt": "caf\xe9 au lait".encode("latin-1") + token_line,  # not UTF-8, still text
            # `KEY=value` assignments are read in config and env text, not in binary data.
            "args.bin": b"\x00\x01DB_PASSWORD=Sup3rS3cretPw\n",
        },
    )
    found = [(f.path, f.line, f.kind) for f in scan_folder(tmp_path, rels)]
    at = len("\ntoken = ")
    assert found == [
        ("blob.dat", None, f"Hugging Face token in binary data at byte {7 + at}"),
        ("late-nul.txt", 2, "Hugging Face token"),
        ("pytorch_model.bin", None, f"Hugging Face token in binary data at byte {6 + at}"),
        ("model.gguf", None, f"Hugging Face token in binary data at byte {8 + at}"),
        ("model.onnx", None, f"Hugging Face token in binary data at byte {13 + at}"),
        ("notes.bin", 2, "Hugging Face token"),
        ("latin1.txt", 2, "Hugging Face token"),
    ]


def test_a_token_across_a_window_edge_of_a_binary_file_is_found_once(tmp_path: Path) -> None:
    edge = secrets_mod.SCAN_BLOCK_BYTES
    data = bytearray(b"\x00" * (3 * edge))
    for offset in (edge - 10, 2 * edge - 4000, 2 * edge + 5):  # across, inside the overlap, after
        data[offset : offset + len(HF_TOKEN)] = HF_TOKEN.encode()
    rels = write(tmp_path, {"state.bin": bytes(data)})
    found = [f.kind for f in scan_folder(tmp_path, rels)]
    assert found == [
        f"Hugging Face token in binary data at byte {o}" for o in (edge - 10, 2 * edge - 4000, 2 * edge + 5)
    ]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be"])
def test_utf16_text_with_a_bom_is_scanned(tmp_path: Path, encoding: str) -> None:
    # PowerShell 5's `>` writes UTF-16 LE with a BOM: every other byte is a NUL.
    text = "first line\n" + "x" * 9000 + f"\nHF_TOKEN={HF_TOKEN}\n"
    data = text.encode(encoding) if encoding == "utf-16" else b"\xfe\xff" + text.encode(encoding)
    rels = write(tmp_path, {"env_dump.txt": data, "weights.safetensors": b"\xff\xfe" + data[2:]})
    found = scan_folder(tmp_path, rels)
    assert [(f.path, f.line) for f in found] == [("env_dump.txt", 3)]


# --- large files: read whole, a block at a time ------------------------------------------------

MiB = 1024 * 1024
FILLER = b"%07d lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do\n"
LINE = len(FILLER % 0)


def filler(n_bytes: int, first: int = 0) -> bytes:
    """Plain text lines, numbered from `first`, `n_bytes` long (the last line may be cut short)."""
    lines = (FILLER % i for i in range(first, first + n_bytes // LINE + 1))
    return b"".join(lines)[:n_bytes]


@pytest.fixture
def windows(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The length of each piece of text the scanner looks at, in order."""
    seen: list[int] = []
    real = secrets_mod._hits

    def spy(text: str, style: str | None) -> list[secrets_mod._Hit]:
        seen.append(len(text))
        return real(text, style)

    monkeypatch.setattr(secrets_mod, "_hits", spy)
    return seen


def test_secret_on_the_first_line_of_a_large_file_is_found(tmp_path: Path, windows: list[int]) -> None:
    data = f"HF_TOKEN={HF_TOKEN}\n".encode() + filler(3 * MiB)
    rels = write(tmp_path, {"notes.txt": data})
    (finding,) = scan_folder(tmp_path, rels)
    assert (finding.path, finding.line, finding.kind) == ("notes.txt", 1, "Hugging Face token")
    assert HF_TOKEN not in finding.describe()
    assert sum(windows) >= len(data) and max(windows) <= 2 * SCAN_BLOCK_BYTES  # whole, in bounded pieces


def test_secrets_near_the_end_of_a_large_file_are_found_on_their_lines(tmp_path: Path) -> None:
    body = filler(3 * MiB - 200)
    lines_before = body.count(b"\n")
    data = body + f"\nexport GITHUB_TOKEN={GH_TOKEN}\n# {AKIA_ID}".encode()  # no final newline
    rels = write(tmp_path, {"deploy.sh": data})
    found = [(f.line, f.kind) for f in scan_folder(tmp_path, rels)]
    assert found == [(lines_before + 2, "GitHub token"), (lines_before + 3, "AWS access key id")]


@pytest.mark.parametrize("block", [1, 2])
@pytest.mark.parametrize("before", [1, 3, 20, len(HF_TOKEN) - 1])
def test_a_secret_straddling_a_block_boundary_is_found(tmp_path: Path, block: int, before: int) -> None:
    """`before` characters of the token sit before the end of block `block`, the rest after it."""
    start = block * SCAN_BLOCK_BYTES - before
    prefix = filler(start - len("key: ")) + b"key: "
    data = prefix + HF_TOKEN.encode() + b"\n" + filler(MiB, first=10**6)
    assert data[start:].startswith(HF_TOKEN.encode())
    rels = write(tmp_path, {"notes.txt": data})
    found = [(f.line, f.kind, f.excerpt) for f in scan_folder(tmp_path, rels)]
    assert found == [(prefix.count(b"\n") + 1, "Hugging Face token", mask(HF_TOKEN, 5))]


@pytest.mark.parametrize(
    "start",
    [
        SCAN_BLOCK_BYTES - 10,  # across the end of the first block
        SCAN_BLOCK_BYTES - secrets_mod._OVERLAP_CHARS - 10,  # across where the first window stops reporting
        2 * SCAN_BLOCK_BYTES - secrets_mod._OVERLAP_CHARS - 10,
        2 * SCAN_BLOCK_BYTES - 2 * secrets_mod._OVERLAP_CHARS - 10,  # across where the next window begins
    ],
)
def test_secrets_in_a_line_longer_than_a_block_are_found_once(
    tmp_path: Path, windows: list[int], start: int
) -> None:
    # One 3 MiB line (minified JSON, say) and then a few ordinary lines.
    line = bytearray(b"x," * (3 * MiB // 2))
    line[start : start + len(OPENAI_KEY) + 2] = f" {OPENAI_KEY} ".encode()
    tail = filler(3 * LINE) + f"pw: {SLACK_TOKEN}\n".encode()
    rels = write(tmp_path, {"data.json": bytes(line) + b"\n" + tail})
    found = [(f.line, f.kind) for f in scan_folder(tmp_path, rels)]
    assert found == [(1, "OpenAI-style API key"), (5, "Slack token")]
    assert max(windows) <= 2 * SCAN_BLOCK_BYTES


def test_a_long_line_read_in_windows_is_one_line_for_assignments(tmp_path: Path) -> None:
    # Where the second window starts, inside line 2, the text reads like a `KEY=value` line.
    first = b"name: demo\n"
    start = 2 * SCAN_BLOCK_BYTES - 2 * secrets_mod._OVERLAP_CHARS - len(first)
    line = bytearray(b"y" * (3 * MiB))  # not `x`: `xxx` would make any value a placeholder
    line[start - 8 : start + 25] = b" " * 8 + b"DB_PASSWORD=Sup3rS3cretPw"
    rels = write(tmp_path, {"settings.cfg": first + bytes(line) + b"\napi_key: abcdef123456\n"})
    assert [(f.line, f.kind) for f in scan_folder(tmp_path, rels)] == [(3, "secret assignment")]


def test_a_large_binary_file_is_searched_where_formats_keep_metadata(
    tmp_path: Path, windows: list[int]
) -> None:
    header = json.dumps({"__metadata__": {"note": HF_TOKEN}, "w": {"dtype": "F32", "data_offsets": [0, 4]}})
    big = files_mod.BINARY_FULL_SCAN_BYTES + MiB
    for name, head in (
        ("model.safetensors", len(header).to_bytes(8, "little") + header.encode()),
        ("data.dat", b"\x00"),
    ):
        with (tmp_path / name).open("wb") as f:  # sparse: large on paper, a few bytes on disk
            f.write(head)
            f.seek(big // 2)
            f.write(GH_TOKEN.encode())  # in the middle: weights are not read whole
            f.seek(big - 100)
            f.write(AKIA_ID.encode())  # in the last 64 KiB, where archives keep their index
    found = [
        (f.path, f.kind.split(" in ")[0]) for f in scan_folder(tmp_path, ["model.safetensors", "data.dat"])
    ]
    assert found == [
        ("model.safetensors", "Hugging Face token"),
        ("model.safetensors", "AWS access key id"),
        ("data.dat", "AWS access key id"),
    ]
    # Read: each file's first MiB and last 64 KiB, nothing of the middle.
    per_file = files_mod.BINARY_HEAD_BYTES + files_mod.BINARY_TAIL_BYTES + 2 * secrets_mod._OVERLAP_CHARS
    assert sum(windows) <= 2 * per_file


def test_streamed_scan_matches_the_whole_text_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cut anywhere, across lines, UTF-8 sequences and long lines, the stream finds what
    scan_text finds over the whole text, on the same lines."""
    rng = random.Random(5)
    pieces = [*POSITIVES, "lorem ipsum ", "\n", "\r\n", "é", "ſ", "\U0001f600", "\xff", "=", " ",
              "hf", "_", "-", "://", "A", "V", "DB_PASSWORD=Sup3rS3cretPw", "x" * 300,
              "ftp://bob:pä55wörd€@host ", "éhttps://u:Tr0ub4dor@h "]  # fmt: skip
    for i in range(300):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 30)))
        data = text.encode("utf-8", "surrogateescape")
        cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(0, 12))))
        blocks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        for path in ("notes.txt", ".env", "app.py"):
            assert secrets_mod._scan_stream(path, blocks) == scan_text(path, data), (i, text, cuts)


def test_long_line_windows_find_what_the_whole_text_scan_finds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lines longer than the window: with a small overlap, every secret shorter than it is found
    once, wherever the windows fall."""
    monkeypatch.setattr(secrets_mod, "_OVERLAP_CHARS", 128)
    rng = random.Random(6)
    one_line = [p.split("\n")[0] for p in POSITIVES]  # the PEM header, not its body
    pieces = [*one_line, "lorem", "ipsum", "hf_", "sk-", "://", "é", "\U0001f600", "x" * 90, "V"]
    for i in range(300):
        words = [rng.choice(pieces) for _ in range(rng.randint(1, 60))]
        text = "".join(w + rng.choice("  \t\t\t\t\t\t\t\n") for w in words)  # long lines, few breaks
        data = text.encode()
        size = rng.randint(1, 300)
        blocks = [data[j : j + size] for j in range(0, len(data), size)]
        assert secrets_mod._scan_stream("notes.txt", blocks) == scan_text("notes.txt", data), (i, text, size)


def test_scan_folder_propagates_missing_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        scan_folder(tmp_path, ["gone.txt"])


# --- anchors: a rule's pattern is tried only where a match can start ---------------------------

POSITIVES = [HF_TOKEN, ORG_TOKEN, AKIA_ID, f"aws_secret_access_key = {AWS_SECRET}", GH_TOKEN, GH_PAT,
             SLACK_TOKEN, SLACK_HOOK, OPENAI_KEY, GOOGLE_KEY, STRIPE_KEY, PEM,
             "postgres://admin:Tr0ub4dor3x@db.internal:5432/app"]  # fmt: skip


def unfiltered(path: str, data: bytes, monkeypatch: pytest.MonkeyPatch) -> list[Finding]:
    """scan_text with each pattern run over the whole text and every line tried for a key."""

    def every_line(text: str) -> set[int]:
        return {0} | {i + 1 for i, c in enumerate(text) if c == "\n"}

    with monkeypatch.context() as m:
        m.setattr(secrets_mod, "_matches", lambda rule, text: rule.pattern.finditer(text))
        m.setattr(secrets_mod, "_key_lines", every_line)
        return scan_text(path, data)


def test_every_match_of_a_rule_starts_where_its_anchors_allow() -> None:
    for rule in secrets_mod._RULES:
        for text in POSITIVES:
            for text_around in (text, f"x {text} y", f"({text})\n", f"V{text}\nV{text}\n"):
                for m in rule.pattern.finditer(text_around):
                    assert m.start() in secrets_mod._starts(rule, text_around), (rule.kind, m.group(0))


def test_anchored_matching_never_changes_the_findings(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(99)
    pieces = [*POSITIVES, "hf", "_", "-", ":", "//", "A", "K", "xox", "sk", "gh", "p", "AI", "za", "live",
              "lorem ipsum ", "\n", "=", " ", "'", "ſ", "K", "aws_secret_access_key=", "\xff", "@", "+",
              "http", ".", "KIA", "Pass", "_KEY: ", "export ", "İ", "V", "\nV"]  # fmt: skip
    for _ in range(400):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 12)))
        for rule in secrets_mod._RULES:
            spans = [m.span() for m in secrets_mod._matches(rule, text)]
            assert spans == [m.span() for m in rule.pattern.finditer(text)], (rule.kind, text)
        for path in ("notes.txt", ".env", "app.py"):
            data = text.encode("utf-8", "surrogateescape")
            assert scan_text(path, data) == unfiltered(path, data, monkeypatch), text


def test_case_insensitive_key_names_match_even_with_unicode_case_folds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # re's IGNORECASE lets the Kelvin sign match `k` and the long s match `s`; so must the filter.
    text = f"AWS_ſECRET_ACCESS_\u212aEY = {AWS_SECRET}\n".encode()
    assert kinds(scan_text("notes.txt", text)) == ["AWS secret access key"]
    assert scan_text("notes.txt", text) == unfiltered("notes.txt", text, monkeypatch)


def test_a_token_used_as_a_file_name_is_found_and_never_printed(tmp_path: Path) -> None:
    rels = write(
        tmp_path,
        {
            f"backup/{HF_TOKEN}.txt": f"again {HF_TOKEN}\n".encode(),
            f"{AKIA_ID}/notes.md": b"hello\n",
            "tokenizer_config.json": b'{"pad_token": "<pad>"}',
        },
    )
    found = scan_folder(tmp_path, rels)
    assert [(f.line, f.kind) for f in found] == [
        (None, "Hugging Face token in the file name"),
        (1, "Hugging Face token"),
        (None, "AWS access key id in the file name"),
    ]
    assert all(HF_TOKEN not in f.describe() and AKIA_ID not in f.describe() for f in found)
    assert found[0].path == f"backup/{HF_TOKEN[:5]}…(37 chars).txt" == found[1].path


def test_media_and_archives_are_searched_in_their_first_bytes_only(tmp_path: Path) -> None:
    # An image dataset is thousands of files whose payload holds no text: reading them whole
    # would cost more than hashing them.
    late = b"\xff\xd8\xff\xe0\x00\x10JFIF" + b"\x00" * BINARY_SNIFF_BYTES + HF_TOKEN.encode()
    early = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + HF_TOKEN.encode() + b"\x00" * BINARY_SNIFF_BYTES
    rels = write(tmp_path, {"a.jpg": late, "b.JPG": early, "c.zip": early, "d.dat": late})
    assert [f.path for f in scan_folder(tmp_path, rels)] == ["b.JPG", "c.zip", "d.dat"]


def test_tensor_and_table_files_are_read_at_their_ends_pickles_whole(tmp_path: Path) -> None:
    def shard(at: int) -> bytes:
        data = bytearray(b"\x00" * MiB)
        data[at : at + len(HF_TOKEN)] = HF_TOKEN.encode()
        return bytes(data)

    middle, start = shard(MiB // 2), shard(100)
    rels = write(
        tmp_path,
        {"a.arrow": middle, "b.npy": start, "c.parquet": shard(MiB - 100), "optimizer.pt": middle},
    )
    assert [f.path for f in scan_folder(tmp_path, rels)] == ["b.npy", "c.parquet", "optimizer.pt"]


def test_a_header_length_that_is_not_a_safetensors_header_is_not_trusted(
    tmp_path: Path, windows: list[int]
) -> None:
    # Random bytes read as a header length would send the scan 100 MiB deep into every shard.
    with (tmp_path / "w.safetensors").open("wb") as f:
        f.write((90 * MiB).to_bytes(8, "little") + b"\x00" * 100)
        f.seek(200 * MiB)
        f.write(b"\x00")
    assert scan_folder(tmp_path, ["w.safetensors"]) == []
    assert sum(windows) <= 2 * (files_mod.BINARY_TAIL_BYTES + secrets_mod._OVERLAP_CHARS)


PROJECT = {
    "proj/README.md": b"# a project\n",
    "proj/.env": b"DEBUG=1\n",
    "proj/train.py": f"import os\n\nTOKEN = '{HF_TOKEN}'\n".encode(),
    "proj/training_args.bin": b"\x80\x04\x95" + HF_TOKEN.encode() + b"\x00\x00",
    "proj/photo.jpg": b"\xff\xd8\xff\xe0\x00" + HF_TOKEN.encode(),  # media: by name only
}
EXPECTED = [
    ("proj/.env", None, "env file"),
    ("proj/train.py", 3, "Hugging Face token"),
    ("proj/training_args.bin", None, "Hugging Face token in binary data at byte 3"),
]


@pytest.mark.parametrize(
    "name,pack",
    [
        ("p.tar", lambda m: tar_bytes(m)),
        ("p.tar.gz", lambda m: tar_bytes(m, "w:gz")),
        ("p.tgz", lambda m: tar_bytes(m, "w:gz")),
        ("p.tar.bz2", lambda m: tar_bytes(m, "w:bz2")),
        ("p.tar.xz", lambda m: tar_bytes(m, "w:xz")),
        ("p.zip", zip_bytes),
        ("P.ZIP", zip_bytes),
    ],
)
def test_archives_are_opened_and_their_members_scanned(
    tmp_path: Path, name: str, pack: Callable[[dict[str, bytes]], bytes]
) -> None:
    found = scan_folder(tmp_path, write(tmp_path, {name: pack(PROJECT)}))
    assert [(f.path, f.line, f.kind) for f in found] == [(f"{name}!/{p}", n, k) for p, n, k in EXPECTED]
    assert all(HF_TOKEN not in f.describe() for f in found)


def test_a_compressed_single_file_is_scanned_under_its_inner_name(tmp_path: Path) -> None:
    text = b"x=1\n" * 5000 + f"API_KEY={AWS_SECRET}\n".encode()
    rels = write(
        tmp_path,
        {
            "secrets.env.gz": gzip.compress(text),  # KEY=value rules: an env file inside
            "notes.txt.gz": gzip.compress(text),  # not an env file: assignments are not read
            "dump.jsonl.xz": lzma.compress(b'{"a": 1}\n' + f'{{"t": "{GH_TOKEN}"}}\n'.encode()),
            "pretend.gz": b"not gzip at all, " + HF_TOKEN.encode(),  # does not open: skimmed
        },
    )
    found = [(f.path, f.line, f.kind) for f in scan_folder(tmp_path, rels)]
    assert ("secrets.env.gz!/secrets.env", 5001, "secret assignment") in found
    assert ("dump.jsonl.xz!/dump.jsonl", 2, "GitHub token") in found
    assert [p for p, _, _ in found if p.startswith("notes")] == []
    assert [p for p, _, _ in found if p.startswith("pretend")] == ["pretend.gz"]


def test_archive_reads_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine import _secretarchives as archives

    monkeypatch.setattr(archives, "ARCHIVE_CONTENT_BYTES", 64 << 10)
    monkeypatch.setattr(archives, "ARCHIVE_STREAM_BYTES", 256 << 10)
    filler = random.Random(7).randbytes(300 << 10)
    secret = f"t='{HF_TOKEN}'\n".encode()
    members = {"a/first.py": secret, "a/filler.dat": filler, "a/late.py": secret, "a/.env": b"X=1\n"}
    rels = write(tmp_path, {"plain.tar": tar_bytes(members), "packed.tar.gz": tar_bytes(members, "w:gz")})
    found = [f.path for f in scan_folder(tmp_path, rels)]
    # The plain tar: every name, content while the budget lasts (the filler is over it).
    assert found[:3] == ["plain.tar!/a/first.py", "plain.tar!/a/late.py", "plain.tar!/a/.env"]
    # The compressed tar: nothing past the first 256 KiB of stream, which ends in the filler.
    assert found[3:] == ["packed.tar.gz!/a/first.py"]


def test_a_damaged_archive_keeps_what_was_read_before_the_damage(tmp_path: Path) -> None:
    # Review repro: a truncated .jsonl.gz with a token on line 1 was pushed (the findings made
    # before the read error were dropped, and the fallback skimmed compressed bytes).
    text = f'{{"t": "{HF_TOKEN}"}}\n'.encode() + b'{"a": 1}\n' * 200_000
    whole = gzip.compress(text)
    tar = tar_bytes({"a/run.py": f"t = '{GH_TOKEN}'\n".encode(), "a/big.txt": b"x\n" * 500_000}, "w:gz")
    stored = io.BytesIO()
    with zipfile.ZipFile(stored, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("ok.py", f"t = '{GH_TOKEN}'\n")
        zf.writestr("bad.py", "y = 1\n" * 100)
    bad_crc = stored.getvalue().replace(b"y = 1", b"y = 2", 1)  # bad.py no longer matches its CRC
    rels = write(
        tmp_path,
        {
            "cut.jsonl.gz": whole[: len(whole) // 2],
            "tail.jsonl.gz": whole + b"garbage after the stream",
            "cut.tar.gz": tar[: len(tar) // 2],
            "crc.zip": bad_crc,
        },
    )
    found = {(f.path, f.kind) for f in scan_folder(tmp_path, rels)}
    assert ("cut.jsonl.gz!/cut.jsonl", "Hugging Face token") in found
    assert ("tail.jsonl.gz!/tail.jsonl", "Hugging Face token") in found
    assert ("cut.tar.gz!/a/run.py", "GitHub token") in found
    assert ("crc.zip!/ok.py", "GitHub token") in found


def test_unsupported_zip_members_and_tar_links_do_not_break_the_scan(tmp_path: Path) -> None:
    data = bytearray(zip_bytes({"a.py": f"t = '{HF_TOKEN}'\n".encode(), "b.txt": b"hello\n"}))
    # Mark b.txt's entries as compression method 9 (Deflate64), which zipfile cannot read.
    name_at = [i for i in range(len(data)) if data[i : i + 5] == b"b.txt"]
    for at in name_at:
        header = data.rfind(b"PK", 0, at)
        method_at = header + (8 if data[header : header + 4] == b"PK\x03\x04" else 10)
        data[method_at : method_at + 2] = (9).to_bytes(2, "little")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        link = tarfile.TarInfo("proj/.env")
        link.type, link.linkname = tarfile.SYMTYPE, "/run/secrets/env"
        tar.addfile(link)
    rels = write(tmp_path, {"d64.zip": bytes(data), "links.tar": buf.getvalue()})
    found = [(f.path, f.kind) for f in scan_folder(tmp_path, rels)]
    assert ("d64.zip!/a.py", "Hugging Face token") in found
    assert ("links.tar!/proj/.env", "env file") in found


def _stored_zip(members: dict[str, bytes], method: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_archive_damage_and_disguise_do_not_hide_a_token(tmp_path: Path) -> None:
    # Chaos-test repros: each of these was pushed with exit 0.
    line = f"HF_TOKEN = '{HF_TOKEN}'\n".encode()
    spoiled = bytearray(tar_bytes({"a.txt": b"hello\n", "b.txt": b"x" * 100, "c.txt": line}))
    spoiled[1024 + 148 : 1024 + 156] = b"99999999"  # b.txt's header checksum: a bad header
    pad = random.Random(5).randbytes(20000)
    rels = write(
        tmp_path,
        {
            "names.zip": zip_bytes({f"dir/{HF_TOKEN}.txt": b"hi\n"}),
            "names.tar": tar_bytes({f"dir/{GH_TOKEN}.txt": b"hi\n"}),
            "small.txt.gz": gzip.compress(line) + b"GARBAGE",
            "spoiled.tar": bytes(spoiled),
            "cut.zip": _stored_zip({"pad.bin": pad, "n.txt": line})[:-30],
            "cut-deflated.zip": _stored_zip({"pad.bin": pad, "n.txt": line}, zipfile.ZIP_DEFLATED)[:-30],
            "big.zip": zip_bytes({"training_args.bin": line + b"\0" * (17 << 20)}),
            "model.keras": zip_bytes({"config.json": line}),
            "checkpoint": zip_bytes({"args.txt": line}),  # no suffix: a zip by its first bytes
        },
    )
    found = {f.path.split("!/")[0]: f for f in scan_folder(tmp_path, rels)}
    assert sorted(found) == sorted(rels)
    assert found["names.zip"].path == f"names.zip!/dir/{HF_TOKEN[:5]}…(37 chars).txt"  # masked
    assert all(HF_TOKEN not in f.describe() and GH_TOKEN not in f.describe() for f in found.values())


def _tar_header(name: str, size: int, fmt: Literal[0, 1, 2]) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    return info.tobuf(format=fmt)


def _block(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 512)


def test_hostile_archives_neither_crash_nor_hang_the_scan(tmp_path: Path) -> None:
    # Fuzzing repros: each raised out of the scan (a push traceback) or never returned.
    line = f"HF_TOKEN={HF_TOKEN}\n".encode()
    env = _tar_header("c.env", len(line), tarfile.GNU_FORMAT) + _block(line)
    backwards = (  # a negative size sends tarfile back to a header it has read: it looped
        _tar_header("a.txt", 512, tarfile.GNU_FORMAT) + _block(b"x" * 512)
        + _tar_header("b.jpg", -1024, tarfile.GNU_FORMAT) + env + b"\0" * 1024
    )  # fmt: skip
    huge = gzip.compress(  # a declared 10**30 bytes was skipped 10 KiB at a time
        _tar_header("clip.mp4", 10**30, tarfile.PAX_FORMAT) + _block(b"\0" * 1024) + env
    )
    empty_name = io.BytesIO()
    with zipfile.ZipFile(empty_name, "w") as zf:  # IndexError in ZipInfo.is_dir()
        zf.writestr(zipfile.ZipInfo(""), b"x")
        zf.writestr("cfg.py", line)
    bad_crc = io.BytesIO()
    with zipfile.ZipFile(bad_crc, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("config.py", line)
    flipped = bad_crc.getvalue().replace(b"HF_TOKEN=", b"HF_TOKEM=", 1)  # unzip warns, extracts
    padded = lzma.compress(b"x\n") + b"\0" * 8 + lzma.compress(line)  # legal .xz stream padding
    rels = write(
        tmp_path,
        {
            "back.tar": backwards,
            "huge.tar.gz": huge,
            "noname.zip": empty_name.getvalue(),
            "crc.zip": flipped,
            "logs.txt.xz": padded,
        },
    )
    found = {f.path.split("!/")[0] for f in scan_folder(tmp_path, rels)}
    # huge.tar.gz: its token lies past the declared 10**30 bytes, where no tool reads: it only
    # had to return.
    assert found == set(rels) - {"huge.tar.gz"}
