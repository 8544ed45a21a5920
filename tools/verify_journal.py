#!/usr/bin/env python3
"""Independent verifier of a van journal export, written from docs/journal-format.md alone.

Usage: verify_journal.py EXPORT.jsonl [--pubkey HEX]
Reads JSON Lines from `vanctl journal export`, checks the gapless sequence, chain links, hashes,
strict Ed25519 signatures, key rotations and the format rules, and prints "OK: N records" or
"FAILED at record N: why" (exit status 1).
Needs only Python 3 and the `cryptography` package (no Rust, none of the van's code).

OpenSSL's Ed25519 (behind `cryptography`) checks S < L and the cofactorless equation, but accepts
small-order public keys and R values, under which one signature verifies for every message. The
document's strict rules are therefore checked here, from the curve's definition, before OpenSSL is
asked about the equation.
"""
import hashlib
import json
import re
import struct
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

RECORD_DOMAIN = b"mtu.journal.record.v1\x00"
ROTATION_DOMAIN = b"mtu.journal.key-rotation.v1\x00"
MAX_PAYLOAD = 262144
VAN_ID = re.compile(rb"[A-Za-z0-9._-]{1,32}")
KIND = re.compile(rb"[a-z0-9._-]{1,64}")

# Edwards25519: -x^2 + y^2 = 1 + d x^2 y^2 over GF(p); L is the prime order of the base point.
P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = (-121665 * pow(121666, P - 2, P)) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


class Failure(Exception):
    pass


def decode_point(b):
    """Decodes a 32-byte point; None unless it is the canonical encoding of a curve point."""
    if len(b) != 32:
        return None
    n = int.from_bytes(b, "little")
    y, sign = n & ((1 << 255) - 1), n >> 255
    if y >= P:
        return None  # non-canonical: y must be below p
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    if x2 == 0:
        return None if sign else (0, y)
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P != 0:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P != 0:
        return None  # not on the curve
    if x & 1 != sign:
        x = P - x
    return (x, y)


def add(p1, p2):
    (x1, y1), (x2, y2) = p1, p2
    t = D * x1 * x2 * y1 * y2 % P
    x3 = (x1 * y2 + y1 * x2) * pow(1 + t, P - 2, P) % P
    y3 = (y1 * y2 + x1 * x2) * pow(1 - t, P - 2, P) % P
    return (x3, y3)


def small_order(pt):
    """True for the 8 points with [8]P = identity (0, 1)."""
    for _ in range(3):
        pt = add(pt, pt)
    return pt == (0, 1)


def strict_key(b, what):
    """A public key under the document's rules 1 and 2: canonical, on the curve, not small order."""
    pt = decode_point(b)
    if pt is None:
        raise Failure(f"{what} is not a canonical Ed25519 point")
    if small_order(pt):
        raise Failure(f"{what} is a small-order (weak) point")
    return b


def verify_strict(public, sig, msg, what):
    """Rules 3-5: R canonical and not small order, S < L, then the exact equation (OpenSSL)."""
    if len(sig) != 64:
        raise Failure(f"{what}: signature is not 64 bytes")
    r = decode_point(sig[:32])
    if r is None or small_order(r):
        raise Failure(f"{what}: R is not a canonical point of large order")
    if int.from_bytes(sig[32:], "little") >= L:
        raise Failure(f"{what}: S is not below the group order")
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(sig, msg)
    except InvalidSignature:
        raise Failure(f"{what}: does not verify") from None


# Format rule 7: the catalogue's kinds and the fields their payloads must carry.
def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _is_hex(n):
    return lambda v: isinstance(v, str) and re.fullmatch(f"[0-9a-f]{{{n}}}", v) is not None


def _one_of(*values):
    return lambda v: v in values


def _is_str(v):
    return isinstance(v, str)


class _optional:
    """A field that may be absent (or null); when present it must pass `check`."""

    def __init__(self, check):
        self.check = check

    def __call__(self, v):
        return v is None or self.check(v)


def _is_health(v):
    fields = {"absent": (), "connected": (), "busy": ("what",), "fault": ("fault", "detail"),
              "disconnected": ("why",)}
    return (isinstance(v, dict) and v.get("state") in fields
            and all(isinstance(v.get(f), str) for f in fields[v["state"]]))


CATALOGUE = {
    "journal.genesis": {"format": lambda v: _is_int(v) and v == 1, "public_key": _is_hex(64), "van_id": _is_str},
    "daemon.start": {"config": _is_str, "mode": _one_of("production", "simulation"), "open_ms": _is_int,
                     "previous_stop": _one_of("none", "clean", "unclean"),
                     "records_verified_at_open": _is_int, "version": _is_str},
    "daemon.stop": {"reason": _one_of("SIGTERM", "SIGINT", "power-fail"), "interrupted_jobs": _is_int,
                    "stop_ms": _is_int},
    "key.rotate": {"new_key_id": _is_hex(16), "new_public_key": _is_hex(64), "old_key_id": _is_hex(16),
                   "proof": _is_hex(128)},
    "fault.storage": {"failed_appends": _is_int, "first_error": _is_str, "since": _is_str,
                      "failed_kinds": _optional(lambda v: isinstance(v, dict) and all(map(_is_int, v.values())))},
    "device.health": {"device": _is_str, "health": _is_health, "changes": _is_int},
    "devices.health": {"devices": lambda v: isinstance(v, dict) and all(map(_is_health, v.values()))},
    "device.job": {"job": _is_int, "device": _is_str, "what": _is_str,
                   "outcome": _one_of("done", "failed", "unknown", "cancelled", "interrupted"),
                   "fault": _optional(_is_str), "may_have_acted": lambda v: isinstance(v, bool),
                   "detail": _optional(_is_str), "data": _optional(lambda v: True), "ms": _is_int},
    "gpio.tamper": {"active": lambda v: isinstance(v, bool)},
    "power.fail": {"active": lambda v: isinstance(v, bool)},
}


def format_rules(seq, van, kind, payload):
    """The document's format rules 1-7; returns the payload parsed."""
    if not VAN_ID.fullmatch(van):
        raise Failure("van_id breaks the format rules")
    if not KIND.fullmatch(kind):
        raise Failure("kind breaks the format rules")
    if len(payload) > MAX_PAYLOAD:
        raise Failure("payload is larger than 262144 bytes")
    try:
        p = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise Failure("payload is not UTF-8 JSON text") from None
    if seq < 1:
        raise Failure("sequence numbers start at 1")
    if (seq == 1) != (kind == b"journal.genesis"):
        raise Failure("journal.genesis must be record 1 and only record 1")
    for field, ok in CATALOGUE.get(kind.decode(), {}).items():
        if not isinstance(p, dict) or not ok(p.get(field)) or (field not in p and not isinstance(ok, _optional)):
            raise Failure(f"{kind.decode()} payload field {field!r} is missing or malformed")
    return p


def signed_bytes(r, van, kind, payload):
    return (RECORD_DOMAIN + struct.pack(">Q", r["seq"]) + bytes([len(van)]) + van
            + bytes.fromhex(r["key_id"]) + struct.pack(">q", r["time_us"]) + bytes.fromhex(r["boot_id"])
            + struct.pack(">Q", r["boot_us"]) + bytes([len(kind)]) + kind
            + struct.pack(">I", len(payload)) + payload + bytes.fromhex(r["prev_hash"]))


def key_id(public_bytes):
    return hashlib.sha256(public_bytes).digest()[:8]


def check(r, state, trusted):
    seq = r["seq"]
    if seq != state["seq"] + 1:
        raise Failure(f"sequence: expected {state['seq'] + 1}")
    van, kind = r["van_id"].encode("utf-8"), r["kind"].encode("utf-8")
    payload = r["payload"].encode("utf-8")
    if state["van"] is not None and van != state["van"]:
        raise Failure("different van id")
    if bytes.fromhex(r["prev_hash"]) != state["prev"]:
        raise Failure("chain broken")
    p = format_rules(seq, van, kind, payload)
    body = signed_bytes(r, van, kind, payload)
    digest = hashlib.sha256(body).digest()
    if digest.hex() != r["hash"]:
        raise Failure("hash does not match contents")
    key = state["key"]
    if seq == 1:
        key = strict_key(bytes.fromhex(p["public_key"]), "genesis public key")
        if trusted is not None and key != trusted:
            raise Failure("genesis key is not the enrolled key")
        if p["van_id"].encode("utf-8") != van:
            raise Failure("genesis payload van_id differs from the record's")
    if bytes.fromhex(r["key_id"]) != key_id(key):
        raise Failure("signed by an unexpected key")
    verify_strict(key, bytes.fromhex(r["sig"]), body, "signature")
    if kind == b"key.rotate":
        new = strict_key(bytes.fromhex(p["new_public_key"]), "rotation's new public key")
        if bytes.fromhex(p["old_key_id"]) != key_id(key) or bytes.fromhex(p["new_key_id"]) != key_id(new):
            raise Failure("key.rotate key ids do not match the old and new public keys")
        proof_msg = ROTATION_DOMAIN + bytes([len(van)]) + van + struct.pack(">Q", seq) + key_id(key) + new
        verify_strict(new, bytes.fromhex(p["proof"]), proof_msg, "rotation proof")
        key = new
    state.update(seq=seq, van=van, prev=digest, key=key)


def main():
    args = sys.argv[1:]
    trusted = None
    if "--pubkey" in args:
        i = args.index("--pubkey")
        try:
            trusted = strict_key(bytes.fromhex(args[i + 1]), "--pubkey")
        except (Failure, ValueError) as e:
            print(f"--pubkey refused: {e}")
            sys.exit(2)
        del args[i:i + 2]
    state = {"seq": 0, "van": None, "prev": bytes(32), "key": None}
    with open(args[0], encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            seq = state["seq"] + 1
            try:
                r = json.loads(line)
                seq = r["seq"]
                check(r, state, trusted)
            except Failure as e:
                print(f"FAILED at record {seq}: {e}")
                sys.exit(1)
            except (ValueError, KeyError, TypeError, struct.error) as e:
                print(f"FAILED at record {seq}: line {n} is not a valid export record ({e!r})")
                sys.exit(1)
    print(f"OK: {state['seq']} records")


if __name__ == "__main__":
    main()
