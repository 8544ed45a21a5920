#!/usr/bin/env python3
"""Independent verifier of a van journal export, written from docs/journal-format.md alone.

Usage: verify_journal.py EXPORT.jsonl [--pubkey HEX]
Reads JSON Lines from `vanctl journal export`, checks the gapless sequence, chain links, hashes,
Ed25519 signatures and key rotations, and prints "OK: N records" or "FAILED at record N: why".
Needs only Python 3 and the `cryptography` package (no Rust, none of the van's code).
"""
import hashlib
import json
import struct
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

RECORD_DOMAIN = b"mtu.journal.record.v1\x00"
ROTATION_DOMAIN = b"mtu.journal.key-rotation.v1\x00"


def signed_bytes(r, payload):
    van = r["van_id"].encode("ascii")
    kind = r["kind"].encode("ascii")
    return (RECORD_DOMAIN + struct.pack(">Q", r["seq"]) + bytes([len(van)]) + van
            + bytes.fromhex(r["key_id"]) + struct.pack(">q", r["time_us"]) + bytes.fromhex(r["boot_id"])
            + struct.pack(">Q", r["boot_us"]) + bytes([len(kind)]) + kind
            + struct.pack(">I", len(payload)) + payload + bytes.fromhex(r["prev_hash"]))


def key_id(public_bytes):
    return hashlib.sha256(public_bytes).digest()[:8]


def main():
    args = sys.argv[1:]
    trusted = None
    if "--pubkey" in args:
        i = args.index("--pubkey")
        trusted = bytes.fromhex(args[i + 1])
        del args[i:i + 2]
    expected_seq, prev, van, key = 1, bytes(32), None, None
    with open(args[0], encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            seq = r["seq"]

            def fail(why):
                print(f"FAILED at record {seq}: {why}")
                sys.exit(1)

            if seq != expected_seq:
                fail(f"sequence: expected {expected_seq}")
            if van is not None and r["van_id"] != van:
                fail("different van id")
            if bytes.fromhex(r["prev_hash"]) != prev:
                fail("chain broken")
            payload = r["payload"].encode("utf-8")
            body = signed_bytes(r, payload)
            digest = hashlib.sha256(body).digest()
            if digest.hex() != r["hash"]:
                fail("hash does not match contents")
            p = json.loads(payload)
            if seq == 1:
                if r["kind"] != "journal.genesis":
                    fail("record 1 is not journal.genesis")
                key = bytes.fromhex(p["public_key"])
                if trusted is not None and key != trusted:
                    fail("genesis key is not the enrolled key")
                van = r["van_id"]
            if bytes.fromhex(r["key_id"]) != key_id(key):
                fail("signed by an unexpected key")
            try:
                Ed25519PublicKey.from_public_bytes(key).verify(bytes.fromhex(r["sig"]), body)
            except InvalidSignature:
                fail("bad signature")
            if r["kind"] == "key.rotate":
                new = bytes.fromhex(p["new_public_key"])
                van_b = r["van_id"].encode("ascii")
                proof_msg = (ROTATION_DOMAIN + bytes([len(van_b)]) + van_b + struct.pack(">Q", seq)
                             + key_id(key) + new)
                try:
                    Ed25519PublicKey.from_public_bytes(new).verify(bytes.fromhex(p["proof"]), proof_msg)
                except InvalidSignature:
                    fail("rotation proof invalid")
                key = new
            prev, expected_seq = digest, seq + 1
    print(f"OK: {expected_seq - 1} records")


if __name__ == "__main__":
    main()
