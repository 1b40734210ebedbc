#!/usr/bin/env python3
"""Computes the test vectors of docs/offline-codes.md from the page alone (Python's hashlib and
hmac, none of Elevate's code), so that the Rust implementation is checked against an independent
one. Run: python3 docs/offline-vectors.py"""
import hashlib
import hmac

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
SECRET = bytes(range(32))


def luhn32(values):
    total, factor = 0, 2
    for v in reversed(values):
        p = factor * v
        total += p // 32 + p % 32
        factor = 1 if factor == 2 else 2
    return (32 - total % 32) % 32


def encode(value, count):
    digits = [(value >> (5 * (count - 1 - i))) & 31 for i in range(count)]
    digits.append(luhn32(digits))
    text = "".join(ALPHABET[d] for d in digits)
    return "-".join(text[i:i + 5] for i in range(0, len(text), 5))


def device_key(device_id):
    return int.from_bytes(hashlib.sha256(device_id.encode()).digest()[:8], "big") & ((1 << 35) - 1)


def command_digest(path, sha256, args):
    h = hashlib.sha256(b"elevate-command-v1\0")
    for part in [path, sha256.lower()] + args:
        b = part.encode()
        h.update(len(b).to_bytes(8, "big") + b)
    return h.digest()


def challenge_value(device_id, uid, nonce, command_bits):
    return (2 << 117) | (device_key(device_id) << 82) | (uid << 50) | (nonce << 20) | command_bits


def truncate(mac):
    offset = mac[-1] & 0x0F
    return int.from_bytes(mac[offset:offset + 4], "big") & 0x7FFFFFFF


def response(challenge, scope, minutes, share=0, digest=None, needed=0):
    message = b"elevate-offline-v2\0" + challenge.to_bytes(15, "big")
    message += bytes([{"request": 0, "session": 1, "break-glass": 2}[scope]])
    message += minutes.to_bytes(2, "big")
    if scope == "break-glass":
        message += bytes([share, needed])
    if scope == "request":
        message += digest
    mac = hmac.new(SECRET, message, hashlib.sha256).digest()
    m = truncate(mac)
    kind = {"request": 0, "session": 1, "break-glass": 2}[scope]
    return mac.hex(), m, encode((kind << 42) | (minutes << 31) | m, 9)


COMMANDS = {
    "apt": ("/usr/bin/apt", "ab" * 32, ["install", "htop"]),
    "systemctl": ("/usr/bin/systemctl", "00" * 32, ["restart", "cups"]),
}
CHALLENGES = [
    ("01a21ba6-ff25-712a-b95c-69334d79d8ad", 1001, 0x2345678, "apt"),
    ("web-01", 1000, 0, "systemctl"),
    ("e2e-host", 4294967294, (1 << 30) - 1, None),
]

print("| command | path | sha256 | args | digest | 20 bits |")
for name, (path, sha, args) in COMMANDS.items():
    d = command_digest(path, sha, args)
    print(f"| {name} | `{path}` | `{sha[:4]}…` | `{' '.join(args)}` | `{d.hex()}` | {int.from_bytes(d[:4], 'big') >> 12} |")
print()
print("| device id | uid | nonce | command | challenge |")
values = []
for device, uid, nonce, command in CHALLENGES:
    bits = int.from_bytes(command_digest(*COMMANDS[command])[:4], "big") >> 12 if command else 0
    v = challenge_value(device, uid, nonce, bits)
    values.append((v, command))
    print(f"| `{device}` | {uid} | `{nonce:#x}` | {command or '—'} | `{encode(v, 24)}` |")
print()
print("| challenge | scope | minutes | HMAC-SHA-256 | MAC | response |")
for v, command in values:
    grants = [("session", 60), ("session", 1440)]
    if command:
        grants.insert(0, ("request", 30))
    for scope, minutes in grants:
        digest = command_digest(*COMMANDS[command]) if scope == "request" else None
        h, m, r = response(v, scope, minutes, digest=digest)
        print(f"| `{encode(v, 24)}` | {scope} | {minutes} | `{h}` | {m} | `{r}` |")
print()
print("| challenge | codes needed | share | minutes | HMAC-SHA-256 | MAC | response |")
for v, _ in values[1:3]:
    for needed, share, minutes in [(2, 1, 60), (2, 2, 60), (3, 3, 240)]:
        h, m, r = response(v, "break-glass", minutes, share=share, needed=needed)
        print(f"| `{encode(v, 24)}` | {needed} | {share} | {minutes} | `{h}` | {m} | `{r}` |")
