"""Errors a user can cause and fix. The CLI prints their message (no traceback) and exits non-zero."""


class UserError(ValueError):
    """Bad input: the message says what was wrong and how to fix it."""


class MissingDataError(UserError, FileNotFoundError):
    """A dataset root or weights file is not where we looked."""


def hub_cache_error(missing: str, download: str, tail: str = "") -> MissingDataError:
    """The one message for anything not in the Hugging Face hub cache on an offline machine: what is
    missing, where the cache is, the command that fills it, and the variables that move it."""
    from huggingface_hub.constants import HF_HUB_CACHE

    return MissingDataError(f"{missing} (Hugging Face cache: {HF_HUB_CACHE}). On a machine with internet run "
                            f"{download}, then copy the cache here; HF_HOME or HF_HUB_CACHE moves it, and "
                            f"HF_HUB_OFFLINE=1 skips the network retries.{tail}")
