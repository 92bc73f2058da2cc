#!/usr/bin/env python3
"""Cosign's encrypted private key format, written independently of ddiff (issue 14 tests).

cosign (sigstore/cosign pkg/cosign/keys.go) stores a private key as PEM
"ENCRYPTED SIGSTORE PRIVATE KEY" whose body is the JSON of go-securesystemslib's
`encrypted` package: scrypt(password, salt, N, r=8, p=1) -> 32-byte key, NaCl secretbox
(XSalsa20-Poly1305; tag || ciphertext) over the PKCS#8 DER of the key, byte strings in
standard base64. XSalsa20 is written out here from the Salsa20 spec (no NaCl library is
installed); Poly1305, scrypt and the keys come from Python's `cryptography` and hashlib.

  cosign_key.py encrypt KEY.pem PASSWORD LOG_N > cosign.key   (PKCS#8 PEM in, cosign key out)
  cosign_key.py decrypt COSIGN.key PASSWORD > key.pem          (the reverse, to check a real one)
"""
import base64, hashlib, json, os, struct, sys

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.poly1305 import Poly1305

SIGMA = (0x61707865, 0x3320646E, 0x79622D32, 0x6B206574)


def rotl(v, c):
    return ((v << c) & 0xFFFFFFFF) | (v >> (32 - c))


def rounds(x):
    def qr(a, b, c, d):
        x[b] ^= rotl((x[a] + x[d]) & 0xFFFFFFFF, 7)
        x[c] ^= rotl((x[b] + x[a]) & 0xFFFFFFFF, 9)
        x[d] ^= rotl((x[c] + x[b]) & 0xFFFFFFFF, 13)
        x[a] ^= rotl((x[d] + x[c]) & 0xFFFFFFFF, 18)

    for _ in range(10):
        qr(0, 4, 8, 12); qr(5, 9, 13, 1); qr(10, 14, 2, 6); qr(15, 3, 7, 11)
        qr(0, 1, 2, 3); qr(5, 6, 7, 4); qr(10, 11, 8, 9); qr(15, 12, 13, 14)
    return x


def setup(key, sixteen):
    k = struct.unpack("<8I", key)
    n = struct.unpack("<4I", sixteen)
    return [SIGMA[0], k[0], k[1], k[2], k[3], SIGMA[1], n[0], n[1], n[2], n[3],
            SIGMA[2], k[4], k[5], k[6], k[7], SIGMA[3]]


def hsalsa20(key, nonce16):
    x = rounds(setup(key, nonce16))
    return struct.pack("<8I", *(x[i] for i in (0, 5, 10, 15, 6, 7, 8, 9)))


def xsalsa20_stream(key, nonce24, length):
    sub = hsalsa20(key, nonce24[:16])
    out = bytearray()
    counter = 0
    while len(out) < length:
        inp = setup(sub, nonce24[16:24] + struct.pack("<Q", counter))
        x = rounds(list(inp))
        out += struct.pack("<16I", *((a + b) & 0xFFFFFFFF for a, b in zip(x, inp)))
        counter += 1
    return bytes(out[:length])


def secretbox_seal(msg, nonce, key):
    stream = xsalsa20_stream(key, nonce, 32 + len(msg))
    ct = bytes(a ^ b for a, b in zip(msg, stream[32:]))
    return Poly1305.generate_tag(stream[:32], ct) + ct


def secretbox_open(box, nonce, key):
    tag, ct = box[:16], box[16:]
    stream = xsalsa20_stream(key, nonce, 32 + len(ct))
    Poly1305.verify_tag(stream[:32], ct, tag)
    return bytes(a ^ b for a, b in zip(ct, stream[32:]))


def kdf(password, salt, n, r, p):
    return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, dklen=32, maxmem=512 << 20)


def pem(label, body):
    b = base64.b64encode(body).decode()
    lines = [b[i:i + 64] for i in range(0, len(b), 64)]
    return "-----BEGIN %s-----\n%s\n-----END %s-----\n" % (label, "\n".join(lines), label)


def encrypt(key_pem, password, log_n):
    priv = serialization.load_pem_private_key(open(key_pem, "rb").read(), None)
    der = priv.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    salt, nonce = os.urandom(32), os.urandom(24)
    n = 1 << int(log_n)
    box = secretbox_seal(der, nonce, kdf(password.encode(), salt, n, 8, 1))
    doc = {
        "kdf": {"name": "scrypt", "params": {"N": n, "r": 8, "p": 1},
                "salt": base64.b64encode(salt).decode()},
        "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(nonce).decode()},
        "ciphertext": base64.b64encode(box).decode(),
    }
    sys.stdout.write(pem("ENCRYPTED SIGSTORE PRIVATE KEY", json.dumps(doc).encode()))


def decrypt(path, password):
    text = open(path).read()
    body = "".join(l for l in text.splitlines() if l and not l.startswith("-----"))
    doc = json.loads(base64.b64decode(body))
    prm = doc["kdf"]["params"]
    key = kdf(password.encode(), base64.b64decode(doc["kdf"]["salt"]), prm["N"], prm["r"], prm["p"])
    der = secretbox_open(base64.b64decode(doc["ciphertext"]),
                         base64.b64decode(doc["cipher"]["nonce"]), key)
    sys.stdout.write(pem("PRIVATE KEY", der))


if __name__ == "__main__":
    {"encrypt": encrypt, "decrypt": decrypt}[sys.argv[1]](*sys.argv[2:])
