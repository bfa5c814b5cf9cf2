#!/usr/bin/env python3
"""
check_layers.py ENGINE_DIR -- the engine reads bottom-up.

Reads the layer table at the top of ENGINE_DIR/snapfs.h (lines
" *   L<n>  name name ...", a long row continued on lines " *       name ...") and every `#include "..."` of ENGINE_DIR/*.c
and *.h.  Fails (exit 1, one line per fault) when:
  * a file's module (its name without .c/.h; "store_int" belongs to
    "store") is missing from the table or listed twice;
  * a file includes a header of a higher layer;
  * the modules' include graph has a cycle (two modules of one layer that
    include each other, directly or around a ring);
  * a header declares a function that a file of a higher layer defines
    (a call up the layers hidden behind a lower header).
Prints "ok" and exits 0 otherwise.  Usage in the build: tests/unit/meson.build.
"""

import os
import re
import sys

ROW = re.compile(r"^ \*\s+L(\d+)\s+([a-z_][a-z0-9_ ]*?)\s*$")
# A row continued on the next line: " *       more names" (7 spaces).
CONT = re.compile(r"^ \*\s{7}([a-z_][a-z0-9_ ]*?)\s*$")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
# A top-level function definition / declaration of a snap_ name.
DEFINE = re.compile(r"^[a-z][\w \*]*?\b(snap_\w+)\s*\([^;{]*\)\s*\{", re.M)
DECLARE = re.compile(r"^[a-z][\w \*]*?\b(snap_\w+)\s*\([^;{]*\)[^;{]*;",
                     re.M)


def module(name):
    """The module a file or header name belongs to."""
    stem = os.path.splitext(os.path.basename(name))[0]
    return stem[:-4] if stem.endswith("_int") else stem


def read_table(path):
    """{module: layer} from the table at the top of snapfs.h."""
    layers, faults = {}, []
    layer = None
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("#"):
                break
            m = ROW.match(line)
            c = CONT.match(line) if layer is not None else None
            if m:
                layer, names = int(m.group(1)), m.group(2)
            elif c:
                names = c.group(1)
            else:
                layer = None
                continue
            for name in names.split():
                if name in layers:
                    faults.append(f"{path}: {name} is listed twice")
                layers[name] = layer
    if not layers:
        faults.append(f"{path}: no layer table (lines ' *   L<n>  a b c')")
    return layers, faults


def find_cycle(graph):
    """One cycle of the graph as a list of nodes, or None."""
    state, stack = {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                c = visit(m)
                if c:
                    return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            c = visit(n)
            if c:
                return c
    return None


def hidden_calls(d, layers):
    """Functions declared in a header of a lower layer than their file."""
    texts, defined, faults = {}, {}, []
    for name in sorted(os.listdir(d)):
        if name.endswith((".c", ".h")) and module(name) in layers:
            with open(os.path.join(d, name), encoding="utf-8") as f:
                texts[name] = f.read()
    for name, text in texts.items():
        if name.endswith(".c"):
            for fn in DEFINE.findall(text):
                defined[fn] = name
    for name, text in texts.items():
        if not name.endswith(".h"):
            continue
        for fn in DECLARE.findall(text):
            where = defined.get(fn)
            if where and layers[module(where)] > layers[module(name)]:
                faults.append(f"{name} (L{layers[module(name)]}) declares "
                              f"{fn}, defined in {where} "
                              f"(L{layers[module(where)]}): declare it in "
                              "a header of that layer")
    return faults


def main():
    if len(sys.argv) != 2:
        print("usage: check_layers.py ENGINE_DIR", file=sys.stderr)
        return 2
    d = sys.argv[1]
    layers, faults = read_table(os.path.join(d, "snapfs.h"))
    graph = {}
    for name in sorted(os.listdir(d)):
        if not name.endswith((".c", ".h")):
            continue
        mod = module(name)
        if mod not in layers:
            faults.append(f"{name}: module {mod} is not in the layer table "
                          "of snapfs.h")
            continue
        with open(os.path.join(d, name), encoding="utf-8") as f:
            text = f.read()
        for inc in INCLUDE.findall(text):
            dep = module(inc)
            if dep not in layers:
                if os.path.exists(os.path.join(d, inc)):
                    faults.append(f"{name}: includes {inc}, whose module "
                                  f"{dep} is not in the layer table")
                continue
            if dep != mod:
                graph.setdefault(mod, set()).add(dep)
            if layers[dep] > layers[mod]:
                faults.append(f"{name} (L{layers[mod]} {mod}) includes {inc} "
                              f"(L{layers[dep]} {dep}): a lower layer must "
                              "not use a higher one")
    faults += hidden_calls(d, layers)
    cycle = find_cycle(graph)
    if cycle:
        faults.append("include cycle: " + " -> ".join(cycle))
    for f in faults:
        print(f)
    if faults:
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
