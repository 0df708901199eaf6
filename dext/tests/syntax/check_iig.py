#!/usr/bin/env python3
"""Keeps the hand-written iig stand-ins honest, and lints IMPL bodies.

1. For each dext/<Class>.iig, the stand-in generated/<Class>.h declares
   exactly the methods the .iig does, in the form iig gives them:
   - an override of a base-class RPC method (Start, Stop, NewUserClient,
     ...) becomes `Name_Impl(Base_Name_Args)` plus `#define
     <Class>_Name_Args <the .iig's parameters>`;
   - a virtual local method (init, free, ExternalMethod) stays a
     `virtual ... Name(...) override`;
   - a non-virtual LOCALONLY method becomes a plain member.
   Parameters are compared as written (whitespace aside).
2. Each IMPL(Class, Start|Stop) body in dext/*.cpp chains to the
   superclass with `Name(provider, SUPERDISPATCH)`: calling Name(provider)
   or super::Name(provider) compiles but calls the override again.

Exits 1 with one line per problem.
"""
import pathlib
import re
import sys

HERE = pathlib.Path(__file__).resolve().parent
DEXT = HERE.parent.parent
# RPC methods of IOService (xnu-11417.101.15 iokit/DriverKit/IOService.iig)
# that a DEXT class overrides through Name_Impl.
RPC_METHODS = {"Start", "Stop", "NewUserClient", "ClientCrashed", "SetPowerState",
               "CopyClientMemoryForType", "Create", "Terminate", "SetProperties"}
# Members every generated class has that no .iig declares.
GENERATED_ONLY = {"Dispatch", "_Dispatch"}

problems = []


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


def squash(text):
    return re.sub(r"\s+", "", text)


def class_body(text, name):
    m = re.search(r"\bclass\s+%s\s*:\s*public\s+(\w+)[^{]*\{" % name, text)
    if not m:
        return None, None
    depth, i = 1, m.end()
    while depth:
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        i += 1
    return m.group(1), text[m.end():i - 1]


def declarations(body):
    """(name, params, is_virtual, annotations) for each method declared."""
    out = []
    for stmt in body.split(";"):
        stmt = re.sub(r"\b(public|protected|private)\s*:", " ", stmt).strip()
        m = re.match(r"(virtual\s+)?(?:static\s+)?[\w\s\*&:]+?\b(\w+)\s*\((.*)\)\s*([\w\s]*)$",
                     stmt, flags=re.S)
        if m:
            out.append((m.group(2), squash(m.group(3)), bool(m.group(1)), m.group(4).split()))
    return out


def check_class(cls):
    iig_text = strip_comments((DEXT / f"{cls}.iig").read_text())
    gen_path = HERE / "generated" / f"{cls}.h"
    gen_raw = gen_path.read_text()
    gen_text = strip_comments(gen_raw)
    base, iig_body = class_body(iig_text, cls)
    gen_base, gen_body = class_body(gen_text, cls)
    if iig_body is None or gen_body is None:
        problems.append(f"{cls}: class not found in the .iig or in {gen_path.name}")
        return
    if base != gen_base:
        problems.append(f"{cls}: base {base} in the .iig, {gen_base} in the stand-in")
    args = {m.group(1): squash(m.group(2)) for m in
            re.finditer(r"#define\s+%s_(\w+)_Args\s+(.*)" % cls, gen_raw)}
    gen = {name: (params, virt, ann) for name, params, virt, ann in declarations(gen_body)}
    expected = set()
    for name, params, virt, ann in declarations(iig_body):
        if name in RPC_METHODS:
            impl = gen.get(f"{name}_Impl")
            expected.add(f"{name}_Impl")
            if impl is None:
                problems.append(f"{cls}.iig overrides {name}: the stand-in lacks {name}_Impl")
            if args.get(name) != params:
                problems.append(f"{cls}.iig {name}({params}): the stand-in's "
                                f"{cls}_{name}_Args is ({args.get(name)})")
        else:
            expected.add(name)
            got = gen.get(name)
            if got is None:
                problems.append(f"{cls}.iig declares {name}: the stand-in does not")
            elif got[0] != params or got[1] != virt:
                problems.append(f"{cls}.iig {name}({params}) virtual={virt}: the stand-in has "
                                f"({got[0]}) virtual={got[1]}")
            elif virt and "override" not in got[2]:
                problems.append(f"{cls}: stand-in {name} is not marked override")
    for name in gen:
        if name not in expected and name not in GENERATED_ONLY:
            problems.append(f"{cls}: the stand-in declares {name}, which {cls}.iig does not")
    for name in args:
        if name not in RPC_METHODS or f"{name}_Impl" not in expected:
            problems.append(f"{cls}: {cls}_{name}_Args has no override in {cls}.iig")


def check_impl_chaining():
    for cpp in sorted(DEXT.glob("*.cpp")):
        text = strip_comments(cpp.read_text())
        for m in re.finditer(r"\bIMPL\(\s*(\w+)\s*,\s*(Start|Stop)\s*\)\s*\{", text):
            depth, i = 1, m.end()
            while depth:
                depth += {"{": 1, "}": -1}.get(text[i], 0)
                i += 1
            body = text[m.end():i - 1]
            if not re.search(r"(?<![\w:])%s\(\s*provider\s*,\s*SUPERDISPATCH\s*\)" % m.group(2),
                             body):
                problems.append(f"{cpp.name}: IMPL({m.group(1)}, {m.group(2)}) never calls "
                                f"{m.group(2)}(provider, SUPERDISPATCH)")


for iig in sorted(DEXT.glob("*.iig")):
    check_class(iig.stem)
check_impl_chaining()
for p in problems:
    print(f"check_iig.py: {p}", file=sys.stderr)
sys.exit(1 if problems else 0)
