#!/usr/bin/env python3
"""Writes the seed corpus for the `query` fuzz target: one well-formed DNS
query per record shape the fixture serves, so the fuzzer starts from packets
that reach deep into the authority instead of dying in the parser."""
import os
import struct
import sys

QUERIES = [
    ("web.default.svc.cluster.local", 1),       # A
    ("WeB.Default.SVC.cluster.local", 28),      # AAAA, mixed case
    ("_http._tcp.web.default.svc.cluster.local", 33),  # SRV
    ("db.default.svc.cluster.local", 33),       # headless SRV
    ("db-0.db.default.svc.cluster.local", 1),   # hostname
    ("out.default.svc.cluster.local", 1),       # ExternalName chased
    ("loop.default.svc.cluster.local", 5),      # CNAME loop
    ("10.0.96.10.in-addr.arpa", 12),            # PTR, two services
    ("10-244-1-9.default.pod.cluster.local", 1),  # pod record
    ("dns-version.cluster.local", 16),          # TXT
    ("default.svc.cluster.local", 6),           # empty non-terminal
    ("web.default.svc.cluster.local.default.svc.cluster.local", 1),  # search expansion
    ("example.com.default.svc.cluster.local", 1),  # autopath walk
    ("cluster.local", 2),                       # NS at the apex
    ("x." * 60 + "cluster.local", 1),           # many labels
]


def name(qname):
    out = b""
    for label in qname.strip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\x00"


def query(ident, qname, qtype, edns):
    header = struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 1 if edns else 0)
    body = name(qname) + struct.pack("!HH", qtype, 1)
    if edns:
        body += b"\x00" + struct.pack("!HHIH", 41, 1232, 0, 0)
    return header + body


def main(out):
    os.makedirs(out, exist_ok=True)
    for i, (qname, qtype) in enumerate(QUERIES):
        for edns in (False, True):
            path = os.path.join(out, f"seed-{i:02}-{int(edns)}")
            with open(path, "wb") as f:
                f.write(query(0x1000 + i, qname, qtype, edns))


if __name__ == "__main__":
    main(sys.argv[1])
