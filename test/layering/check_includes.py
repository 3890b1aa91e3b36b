#!/usr/bin/env python3
"""Fails when a file under lib/ includes a header of a higher layer.

The layer rule (docs/architecture.md, "Layer rule"): common < quic < h3 <
session < connection, client, server. A file may include headers of its own
layer and of the layers below; ngtcp2 and nghttp3 stay inside quic and h3.

Usage: check_includes.py SOURCE_ROOT     checks SOURCE_ROOT/lib
       check_includes.py --self-test     proves the check catches violations
"""

import pathlib
import re
import sys

LAYER_OF_FOLDER = {
    "common": 0,
    "quic": 1,
    "h3": 2,
    "session": 3,
    "connection": 4,
    "client": 4,
    "server": 4,
}
LAYER_NAMES = {0: "common", 1: "quic", 2: "h3", 3: "session", 4: "connection/client/server"}

# Public headers that describe a layer above common.
PUBLIC_LAYER = {
    "session.hpp": 3,
    "stream.hpp": 3,
    "connection.hpp": 4,
    "client.hpp": 4,
    "server.hpp": 4,
    "load_balancer.hpp": 4,
    "udp_proxy.hpp": 4,
    "protocol_handler.hpp": 4,
    "webtransport_stats.hpp": 4,
    "uvwt.hpp": 4,
}

# Third-party headers and the layers that may include them.
THIRD_PARTY = {"ngtcp2": {1, 2}, "nghttp3": {2}}

# Known debt, named one by one so that nothing else slips in: H3Connection
# creates and owns the sessions and their streams (SessionHost), so lib/h3
# still reaches into lib/session for these three headers.
ALLOWED = {
    ("h3", "session/session_host.hpp"),
    ("h3", "session/session_impl.hpp"),
    ("h3", "session/stream_impl.hpp"),
    # Reports the versions of the libraries it was built with.
    ("common/version.cpp", "<ngtcp2/ngtcp2.h>"),
    ("common/version.cpp", "<nghttp3/nghttp3.h>"),
}

INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', re.M)


def violations(rel_path, text):
    """rel_path: path below lib/ ("h3/x.cpp"); yields one message per bad include."""
    folder = rel_path.split("/", 1)[0]
    layer = LAYER_OF_FOLDER.get(folder)
    if layer is None:
        return
    for m in INCLUDE.finditer(text):
        quote, target = m.group(1), m.group(2)
        spelled = f"<{target}>" if quote == "<" else f'"{target}"'
        if (folder, target) in ALLOWED or (rel_path, spelled) in ALLOWED:
            continue
        head = target.split("/", 1)[0]
        if head == "uvwt" and "/" in target:
            need = PUBLIC_LAYER.get(target.split("/", 1)[1], 0)
        elif quote == '"' and head in LAYER_OF_FOLDER:
            need = LAYER_OF_FOLDER[head]
        elif head in THIRD_PARTY:
            if layer not in THIRD_PARTY[head]:
                yield f"lib/{rel_path}: includes {spelled}: {head} belongs inside " + "/".join(
                    LAYER_NAMES[x] for x in sorted(THIRD_PARTY[head]))
            continue
        else:
            continue
        if need > layer:
            yield (f"lib/{rel_path}: includes {spelled} ({LAYER_NAMES[need]}) "
                   f"from the lower layer {LAYER_NAMES[layer]}")


def check_tree(root):
    lib = pathlib.Path(root) / "lib"
    found = []
    for p in sorted(lib.rglob("*")):
        if p.suffix in (".cpp", ".hpp", ".h") and p.is_file():
            found += violations(p.relative_to(lib).as_posix(), p.read_text(errors="replace"))
    return found


def self_test():
    cases = [
        ("h3/x.hpp", "#include <uvwt/server.hpp>\n", 1),
        ("quic/x.cpp", '#include "h3/capsule.hpp"\n', 1),
        ("session/x.hpp", "#include <ngtcp2/ngtcp2.h>\n", 1),
        ("session/x.hpp", "#include <uvwt/connection.hpp>\n", 1),
        ("common/x.cpp", '#  include "quic/endpoint.hpp"\n', 1),
        ("h3/x.cpp", '#include "server/router.hpp"\n', 1),
        ("server/x.cpp", '#include "h3/capsule.hpp"\n#include <uvwt/server.hpp>\n', 0),
        ("session/x.cpp", '#include "h3/capsule.hpp"\n#include <uvwt/session.hpp>\n', 0),
        ("h3/x.cpp", '#include "session/session_impl.hpp"\n', 0),
    ]
    bad = 0
    for path, text, want in cases:
        got = len(list(violations(path, text)))
        if got != want:
            print(f"self-test: {path} {text.strip()!r}: {got} violations, expected {want}")
            bad += 1
    return bad


def main(argv):
    if len(argv) == 2 and argv[1] == "--self-test":
        return 1 if self_test() else 0
    if len(argv) != 2:
        print(__doc__)
        return 2
    found = check_tree(argv[1])
    for v in found:
        print(v)
    if found:
        print(f"{len(found)} upward include(s): see docs/architecture.md, \"Layer rule\"")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
