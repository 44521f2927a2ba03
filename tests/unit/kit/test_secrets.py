"""Which env vars are secrets, what an edit of them means, and the cipher their values are stored under."""
import pytest
from cryptography.fernet import Fernet

from services.kit.errors import Invalid
from services.kit.secrets import EnvVarInput, SecretCipher, cipher_for, looks_secret, plan_env
from services.kit.settings import Settings


@pytest.mark.parametrize("name", ["AWS_SECRET_ACCESS_KEY", "HF_TOKEN", "DB_PASSWORD", "WANDB_API_KEY", "apikey",
                                  "GITHUB_TOKEN", "PGPASSWD", "MY_PRIMARY_KEY_SECRET", "SSH_KEY"])
def test_names_with_a_secret_word_are_secrets(name):
    assert looks_secret(name)


@pytest.mark.parametrize("name", ["NCCL_DEBUG", "CUDA_VISIBLE_DEVICES", "MAX_NEW_TOKENS", "MAX_TOKENS",
                                  "TOKENIZERS_PARALLELISM", "PRIMARY_KEY_COLUMN", "PARTITION_KEY", "SORT_KEYS",
                                  "KEY_COLUMN", "KEYBOARD_LAYOUT"])
def test_documented_non_secrets_stay_plain(name):
    assert not looks_secret(name)


def test_an_edit_splits_plain_values_new_secret_values_kept_secrets_and_removals():
    plan = plan_env({"NCCL_DEBUG": "INFO", "HF_TOKEN": "t", "MAX_NEW_TOKENS": "9",
                     "PROJECT": EnvVarInput(value="p", secret=True), "SORT_KEY": {"value": "k", "secret": True},
                     "DB_PASSWORD": EnvVarInput(secret=True), "API_KEY": EnvVarInput(value="x", secret=False),
                     "OLD": EnvVarInput()},
                    current={"DB_PASSWORD": 3, "OLD": 1, "GONE_TOKEN": 2})
    assert plan.plain == {"NCCL_DEBUG": "INFO", "MAX_NEW_TOKENS": "9", "API_KEY": "x"}
    assert plan.new_values == {"HF_TOKEN": "t", "PROJECT": "p", "SORT_KEY": "k"}
    assert plan.kept == {"DB_PASSWORD": 3, "OLD": 1}  # a current secret given without a value keeps it
    assert plan.removed == ("GONE_TOKEN",)


def test_a_plain_variable_needs_a_value():
    with pytest.raises(Invalid, match="NCCL_DEBUG is not a secret and has no value"):
        plan_env({"NCCL_DEBUG": EnvVarInput(secret=False)})


def test_values_are_authenticated_ciphertext_under_the_key():
    key = Fernet.generate_key().decode()
    token = SecretCipher(key).encrypt("hush-value")
    assert b"hush-value" not in token and SecretCipher(key).decrypt(token) == "hush-value"
    with pytest.raises(ValueError, match="does not decrypt"):
        SecretCipher(Fernet.generate_key().decode()).decrypt(token)
    with pytest.raises(ValueError, match="not a Fernet key"):
        SecretCipher("too-short")


def test_outside_local_runs_the_local_key_is_refused():
    prod = Settings(env="prod", jwt_secret="s" * 32, s3_access_key="k", s3_secret_key="v")
    with pytest.raises(ValueError, match="AVATAR_SECRETS_KEY"):
        cipher_for(prod)
    assert cipher_for(prod.model_copy(update={"secrets_key": Fernet.generate_key().decode()}))
    assert cipher_for(Settings(env="local"))
