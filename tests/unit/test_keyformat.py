"""Properties of the key format (docs/design.md, "Key format")."""

from __future__ import annotations

import hashlib
import math
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from functions.common import keyformat

envs = st.sampled_from(keyformat.ENVIRONMENTS)
KEY_RE = re.compile(r"tg_(live|test)_[0-9A-Za-z]{38}")


@given(envs)
def test_generated_keys_parse_back_with_their_environment_and_hash(env: str) -> None:
    secret = keyformat.generate(env)
    parsed = keyformat.parse(secret)
    assert parsed is not None
    assert parsed.environment == env
    assert parsed.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert KEY_RE.fullmatch(secret)
    assert len(secret) == keyformat.KEY_LEN


@given(envs, st.data())
def test_any_single_character_change_is_rejected(env: str, data: st.DataObject) -> None:
    secret = keyformat.generate(env)
    i = data.draw(st.integers(0, len(secret) - 1), label="position")
    c = data.draw(
        st.characters(codec="utf-8").filter(lambda ch: ch != secret[i]), label="replacement"
    )
    assert keyformat.parse(secret[:i] + c + secret[i + 1 :]) is None


@given(envs, st.data())
def test_truncation_and_extension_are_rejected(env: str, data: st.DataObject) -> None:
    secret = keyformat.generate(env)
    cut = data.draw(st.integers(0, len(secret) - 1), label="cut")
    assert keyformat.parse(secret[:cut]) is None
    extra = data.draw(st.text(min_size=1, max_size=5), label="extra")
    assert keyformat.parse(secret + extra) is None


@given(envs)
def test_swapping_two_adjacent_different_characters_is_rejected(env: str) -> None:
    secret = keyformat.generate(env)
    for i in range(keyformat.PREFIX_LEN, len(secret) - 1):
        if secret[i] != secret[i + 1]:
            swapped = secret[:i] + secret[i + 1] + secret[i] + secret[i + 2 :]
            assert keyformat.parse(swapped) is None


@given(st.one_of(st.text(), st.binary(), st.integers(), st.none(), st.lists(st.text())))
def test_arbitrary_input_never_raises(value: object) -> None:
    assert keyformat.parse(value) is None or isinstance(value, str)


@settings(max_examples=300)
@given(st.text(alphabet=keyformat.ALPHABET + "_", max_size=60))
def test_text_with_the_right_alphabet_parses_only_with_a_valid_checksum(text: str) -> None:
    for candidate in (text, "tg_live_" + text, "tg_test_" + text):
        parsed = keyformat.parse(candidate)
        if parsed is not None:
            head = candidate[: -keyformat.CHECKSUM_LEN]
            assert keyformat.checksum(head) == candidate[-keyformat.CHECKSUM_LEN :]


def test_body_carries_at_least_160_bits_of_randomness() -> None:
    assert len(set(keyformat.ALPHABET)) == 62
    assert keyformat.BODY_LEN * math.log2(len(keyformat.ALPHABET)) >= 160


def test_bodies_use_the_whole_alphabet_and_do_not_repeat() -> None:
    bodies = [
        keyformat.generate("live")[keyformat.PREFIX_LEN : -keyformat.CHECKSUM_LEN]
        for _ in range(500)
    ]
    assert len(set(bodies)) == len(bodies)
    seen = set("".join(bodies))
    assert seen == set(keyformat.ALPHABET)


def test_key_ids_are_public_identifiers_not_secrets() -> None:
    key_id = keyformat.new_key_id()
    assert key_id.startswith("key_")
    assert keyformat.parse(key_id) is None


def test_unknown_environment_is_refused() -> None:
    try:
        keyformat.generate("prod")
    except ValueError:
        pass
    else:
        raise AssertionError("generate('prod') should fail")
