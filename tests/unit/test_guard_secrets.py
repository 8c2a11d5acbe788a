"""The built-in SECRETS pack: provider rules fire on realistic (fake) keys, the finding
covers only the secret, and placeholders / examples / environment lookups stay quiet.

Every key here is assembled in the test from a prefix and generated characters; none
is real and none is copied from a public corpus.
"""

from __future__ import annotations

import base64
import json
import random
import string

import pytest

from gatehouse.guardrails.engine import Hit, Scanner
from gatehouse.guardrails.rules import RuleSet, load_rules
from gatehouse.guardrails.validators import VALIDATORS

_RNG = random.Random(20240611)
UPPER_DIGITS = string.ascii_uppercase + string.digits
ALNUM = string.ascii_letters + string.digits
HEX = "0123456789abcdef"


def rand(alphabet: str, n: int) -> str:
    return "".join(_RNG.choice(alphabet) for _ in range(n))


def b64url(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.fixture(scope="module")
def scanner() -> Scanner:
    rules = load_rules()
    return Scanner(RuleSet(tuple(rules.by_detector("secrets")), rules.allow))


def findings(scanner: Scanner, text: str) -> list[Hit]:
    return scanner.scan(text, "user")


AWS_ID = "AKIA" + rand("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)
AWS_SECRET = rand(ALNUM + "/+", 40)
GITHUB = "ghp_" + rand(ALNUM, 36)
GITLAB = "glpat-" + rand(ALNUM, 20)
ANTHROPIC = "sk-ant-api03-" + rand(ALNUM + "-_", 93) + "AA"
OPENAI = "sk-proj-" + rand(ALNUM, 20) + "T3BlbkFJ" + rand(ALNUM, 20)
STRIPE = "sk_live_" + rand(ALNUM, 24)
SLACK = "xoxb-" + rand(string.digits, 12) + "-" + rand(string.digits, 13) + "-" + rand(ALNUM, 24)
GCP = "AIza" + rand(ALNUM + "_-", 35)
NPM = "npm_" + rand(ALNUM, 36)
PYPI = "pypi-AgEIcHlwaS5vcmc" + rand(ALNUM + "_-", 120)
SENDGRID = "SG." + rand(ALNUM, 22) + "." + rand(ALNUM, 43)
HF = "hf_" + rand(string.ascii_letters, 34)
JWT = (
    b64url({"alg": "HS256", "typ": "JWT"})
    + "."
    + b64url({"sub": "1234", "name": "Ann"})
    + "."
    + rand(ALNUM + "-_", 43)
)
PEM_BODY = "\n".join(rand(ALNUM + "+/", 64) for _ in range(5))
PEM = f"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}\n-----END RSA PRIVATE KEY-----"
PASSWORD = "Tq8#" + rand(ALNUM, 10)
HEX_TOKEN = rand(HEX, 64)
JWK_D = rand(ALNUM + "-_", 43)
JWK = json.dumps({"kty": "EC", "crv": "P-256", "d": JWK_D}, indent=2)
DROPBOX = rand(ALNUM, 11) + "A" * 10 + rand(ALNUM, 43)
NOTION = "ntn_" + rand(string.digits, 11) + rand(ALNUM, 35)
GITLAB_WORKSPACE = "glwt-" + rand(ALNUM, 30)


@pytest.mark.parametrize(
    ("rule_id", "text", "secret"),
    [
        ("aws-access-key-id", f"aws_access_key_id = {AWS_ID}\n", AWS_ID),
        ("aws-secret-access-key", f'aws_secret_access_key = "{AWS_SECRET}"', AWS_SECRET),
        ("github-token", f"export GH_TOKEN={GITHUB}", GITHUB),
        ("gitlab-token", f"token: {GITLAB} # personal", GITLAB),
        ("anthropic-api-key", f"ANTHROPIC_API_KEY={ANTHROPIC}", ANTHROPIC),
        ("openai-api-key", f'client = OpenAI(api_key="{OPENAI}")', OPENAI),
        ("stripe-secret-key", f"stripe.api_key = '{STRIPE}'", STRIPE),
        ("slack-token", f"SLACK_BOT_TOKEN={SLACK}", SLACK),
        ("gcp-api-key", f'"apiKey": "{GCP}",', GCP),
        ("npm-token", f"//registry.npmjs.org/:_authToken={NPM}", NPM),
        ("pypi-token", f"password = {PYPI}", PYPI),
        ("sendgrid-api-key", f"SENDGRID_API_KEY='{SENDGRID}'", SENDGRID),
        ("huggingface-token", f"HF_TOKEN={HF}", HF),
        ("jwt", f"Authorization: Bearer {JWT}", JWT),
        ("private-key", f"key:\n{PEM}\n", PEM),
        ("generic-password", f'db_password = "{PASSWORD}"', PASSWORD),
        ("generic-password", f"PASSWORD: {PASSWORD}\n", PASSWORD),
        ("connection-string-password", f"postgres://app:{PASSWORD}@db.internal:5432/x", PASSWORD),
        ("url-basic-auth", f"see https://deploy:{PASSWORD}@git.example.org/repo.git", PASSWORD),
        ("sql-password", f"CREATE USER app IDENTIFIED BY '{PASSWORD}';", PASSWORD),
        ("sql-password", f"ALTER USER a IDENTIFIED WITH 'plugin' AS '{PASSWORD}';", PASSWORD),
        ("connection-string-password", f"url = 'appdb://svc:{PASSWORD}@db-host'", PASSWORD),
        (
            "connection-string-password",
            f"smtps://ann@mail.test.org:{PASSWORD}@smtp.test.org",
            PASSWORD,
        ),
        ("cli-password-flag", f"deploy --db-admin-password {PASSWORD}", PASSWORD),
        ("define-credential", f'#define DB_PASSWORD "{PASSWORD}"', PASSWORD),
        ("define-credential", f"%define api_token {HEX_TOKEN}", HEX_TOKEN),
        ("quoted-credential-pair", f"define( 'DB_PASSWORD', '{PASSWORD}' );", PASSWORD),
        ("generic-password", f'<input placeholder="password: &quot;{PASSWORD}&quot;">', PASSWORD),
        ("generic-password", f"<Value>password:{PASSWORD}</Value>", PASSWORD),
        ("generic-password", f"PSWRD:={PASSWORD}", PASSWORD),
        ("jwk-private-key", JWK, JWK_D),
        ("sourcegraph-keyword-token", f"sourcegraph_token: {HEX_TOKEN[:40]}", HEX_TOKEN[:40]),
        ("dropbox-token", f"token = '{DROPBOX}'", DROPBOX),
        ("notion-token", f"NOTION_TOKEN={NOTION}", NOTION),
        ("gitlab-token", f"token: {GITLAB_WORKSPACE}", GITLAB_WORKSPACE),
    ],
)
def test_provider_rule_fires_and_covers_only_the_secret(
    scanner: Scanner, rule_id: str, text: str, secret: str
) -> None:
    hits = [h for h in findings(scanner, text) if h.rule.id == rule_id]
    assert hits, f"{rule_id} did not fire on {text!r}"
    assert hits[0].value == secret
    assert text[hits[0].start : hits[0].end] == secret


def test_generic_secret_redacts_the_value_not_the_name(scanner: Scanner) -> None:
    value = rand(ALNUM, 32)
    text = f'api_key = "{value}"'
    hits = [h for h in findings(scanner, text) if h.rule.id == "generic-secret"]
    assert [h.value for h in hits] == [value]
    assert text[: hits[0].start] == 'api_key = "'


@pytest.mark.parametrize(
    "text",
    [
        'password = os.environ["DB_PASSWORD"]',
        "password = os.getenv('DB_PASSWORD')",
        "api_key = settings.openai_api_key",
        'password = "${DB_PASSWORD}"',
        "token: {{ .Values.token }}",
        "api_key: <your-api-key>",
        'password = "changeme"',
        'secret = "xxxxxxxxxxxxxxxx"',
        "aws_access_key_id = AKIAIOSFODNN7EXAMPLE",
        "GITHUB_TOKEN=ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "password = getpass.getpass()",
        "password: str",
        "def login(user, password):",
        "the password must be at least twelve characters long",
        "Pass `run_in_background: false` to wait for the command.",
        "postgres://user:${PGPASSWORD}@localhost/db",
        "https://user:password@example.com",
        "for item in sorted(values, key=self._rank):",
        "max_tokens = 4096",
        'token_type = "bearer"',
        "-----BEGIN PRIVATE KEY-----\nanything\n-----END PRIVATE KEY-----",
        # names of keys and tokens that are not secrets
        f'public_key = "{rand(ALNUM, 43)}"',
        f'publicToken = "{rand(ALNUM, 43)}"',
        f"csrf-token={rand(ALNUM, 40)}==",
        f'"bucket_key": "{rand(ALNUM, 12)}-1.2"',
        # words that merely contain "pass"
        f'bypass = "{PASSWORD}"',
        # a 64-bit integer literal
        "#define PASSWORD 0x0dead1beef7cafe2",
        'password = "0xAb19D82E7f546cC3"',
        # a host name built from a client token is not the token
        f"akab-{rand(HEX, 16)}-{rand(HEX, 16)}.luna.akamaiapis.net",
        # a hashed asset file name
        f"/assets/logo.ico-{rand(ALNUM, 32)}.png",
        # hand-made provider keys with a sequential run
        "sbp_" + rand(HEX, 34) + "abcdef",
        "pplx-" + rand(ALNUM, 42) + "654321",
        # "d" in a JSON document with no JSON Web Key in it
        f'{{"d": "{rand(ALNUM, 30)}"}}',
    ],
)
def test_placeholders_examples_and_code_do_not_fire(scanner: Scanner, text: str) -> None:
    assert [(h.rule.id, h.value) for h in findings(scanner, text)] == []


def test_jwt_validator() -> None:
    jwt = VALIDATORS["jwt"]
    assert jwt(JWT)
    assert not jwt(b64url({"name": "x"}) + "." + b64url({"sub": "1"}))
    assert not jwt("eyJhbGciOiJIUzI1NiJ9")
    assert not jwt("eyJub3QganNvbg.eyJub3QganNvbg")


def test_credential_value_validator() -> None:
    check = VALIDATORS["credential_value"]
    assert check(PASSWORD)
    for value in ("${TOKEN}", "<your-key>", "os.environ", "config.secret", "SOME_CONSTANT", "word"):
        assert not check(value), value
    assert not check("0x0dead1beef7cafe2")  # a 64-bit integer literal
    assert check("0x" + rand(HEX, 64))  # longer: could be a private key


def test_pack_loads_and_every_rule_is_described(scanner: Scanner) -> None:
    rules = scanner.ruleset.rules
    assert len(rules) >= 100
    ids = [r.id for r in rules]
    assert len(ids) == len(set(ids))
    for rule in rules:
        assert rule.detector == "secrets"
        assert rule.description, rule.id
    assert scanner.prefiltered


def test_rules_carry_keywords_and_a_secret_group(scanner: Scanner) -> None:
    without_keywords = {r.id for r in scanner.ruleset.rules if not r.keywords}
    # shapes with no literal prefix (Discord bot tokens, Mailgun keys) are the exception
    assert without_keywords <= {"discord-bot-token", "mailgun-api-key"}
    assert all(r.group for r in scanner.ruleset.rules)
