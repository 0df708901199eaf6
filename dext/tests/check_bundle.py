#!/usr/bin/env python3
"""Checks the shape of the DEXT's and the host app's Info.plist and
entitlements, which only a Mac would otherwise read.

- The user client admits administrators only: UserClientProperties
  carries IOServiceDEXTEntitlements = [["com.apple.developer.driverkit.
  administrator"]]. The kernel reads that value as an array (any of) of
  arrays (all of) of entitlement names (IOUserServer::checkEntitlements,
  xnu-11417.101.15), so a flat array or a bare string means something else.
- The personality and user client classes are the classes the .iig files
  declare, and the keys the kernel needs are there.
- CFBundleVersion is the build setting that scripts/build_dext.sh stamps on
  every build, in both bundles.
- Each entitlements file holds exactly the entitlements DEVELOPMENT.md
  lists (an extra restricted one makes the signature invalid).
- dext/project.yml builds every source of the DEXT with the strict flags,
  compiles both .iig files, and links DriverKit.framework.

Before that, the validator is run on malformed values and must reject
each. Exits 1 with one line per problem.
"""
import pathlib
import plistlib
import re
import sys

DEXT = pathlib.Path(__file__).resolve().parent.parent
ROOT = DEXT.parent
ADMIN = "com.apple.developer.driverkit.administrator"
WANTED_DEXT_ENTITLEMENTS = [[ADMIN]]
STAMPED_VERSION = "$(CURRENT_PROJECT_VERSION)"

problems = []


def entitlement_sets_problem(value):
    """Why `value` is not an array of non-empty arrays of strings, or None."""
    if not isinstance(value, list) or not value:
        return "must be a non-empty array (any of) of arrays"
    for group in value:
        if not isinstance(group, list) or not group:
            return "each element must be a non-empty array (all of) of strings"
        if not all(isinstance(name, str) and name for name in group):
            return "each inner element must be an entitlement name"
    return None


def self_test():
    for bad in ([ADMIN], ADMIN, [], [[]], [[ADMIN, 1]], {"a": [ADMIN]}, [[ADMIN], ADMIN]):
        if entitlement_sets_problem(bad) is None:
            problems.append(f"self-test: the shape check accepted {bad!r}")
    if entitlement_sets_problem(WANTED_DEXT_ENTITLEMENTS) is not None:
        problems.append("self-test: the shape check rejected the wanted value")


def iig_class(name):
    text = (DEXT / f"{name}.iig").read_text()
    m = re.search(r"\bclass\s+(\w+)\s*:", text)
    return m.group(1) if m else None


def load(path):
    with open(path, "rb") as f:
        return plistlib.load(f)


def check_dext_plist():
    info = load(DEXT / "Info.plist")
    for key in ("CFBundleIdentifier", "CFBundleExecutable", "OSBundleUsageDescription"):
        if not info.get(key):
            problems.append(f"dext/Info.plist: {key} missing")
    if info.get("CFBundleVersion") != STAMPED_VERSION:
        problems.append(f"dext/Info.plist: CFBundleVersion must be {STAMPED_VERSION} "
                        f"(stamped per build), not {info.get('CFBundleVersion')!r}")
    personalities = info.get("IOKitPersonalities")
    if not isinstance(personalities, dict) or len(personalities) != 1:
        problems.append("dext/Info.plist: expected exactly one IOKitPersonalities entry")
        return
    (pname, p), = personalities.items()
    want = {
        "IOClass": "IOUserService",
        "IOProviderClass": "IOUserResources",
        "IOResourceMatch": "IOKit",
        "IOUserClass": iig_class("CybMemDriver"),
        "CFBundleIdentifierKernel": "com.apple.kpi.iokit",
    }
    for key, value in want.items():
        if p.get(key) != value:
            problems.append(f"dext/Info.plist: {pname}.{key} is {p.get(key)!r}, want {value!r}")
    for key in ("IOUserServerName", "IOMatchCategory", "CFBundleIdentifier"):
        if not p.get(key):
            problems.append(f"dext/Info.plist: {pname}.{key} missing")
    uc = p.get("UserClientProperties")
    if not isinstance(uc, dict):
        problems.append(f"dext/Info.plist: {pname}.UserClientProperties must be a dictionary "
                        "inside the personality (IOService::Create reads it there)")
        return
    if uc.get("IOClass") != "IOUserUserClient":
        problems.append("dext/Info.plist: UserClientProperties.IOClass must be IOUserUserClient")
    if uc.get("IOUserClass") != iig_class("CybMemUserClient"):
        problems.append("dext/Info.plist: UserClientProperties.IOUserClass must be "
                        f"{iig_class('CybMemUserClient')}")
    ents = uc.get("IOServiceDEXTEntitlements")
    shape = entitlement_sets_problem(ents)
    if shape is not None:
        problems.append(f"dext/Info.plist: UserClientProperties.IOServiceDEXTEntitlements {shape} "
                        f"(got {ents!r})")
    elif ents != WANTED_DEXT_ENTITLEMENTS:
        problems.append("dext/Info.plist: UserClientProperties.IOServiceDEXTEntitlements must be "
                        f"{WANTED_DEXT_ENTITLEMENTS!r} (administrators only), got {ents!r}")
    if "IOServiceDEXTEntitlements" in p:
        problems.append("dext/Info.plist: IOServiceDEXTEntitlements belongs in "
                        "UserClientProperties, not in the personality")


def check_host_plist():
    info = load(ROOT / "host-app" / "Info.plist")
    if info.get("CFBundleVersion") != STAMPED_VERSION:
        problems.append(f"host-app/Info.plist: CFBundleVersion must be {STAMPED_VERSION}")


def check_entitlements(path, wanted):
    ents = load(path)
    if ents != wanted:
        problems.append(f"{path.relative_to(ROOT)}: entitlements are {ents!r}, want {wanted!r}")


def check_project():
    text = (DEXT / "project.yml").read_text()
    if not re.search(r"^\s*-\s*sdk:\s*DriverKit\.framework\s*$", text, flags=re.M):
        problems.append("dext/project.yml: the DEXT target does not link DriverKit.framework")
    for iig in sorted(DEXT.glob("*.iig")):
        if not re.search(r"-\s*path:\s*%s\s*\n\s*buildPhase:\s*sources" % re.escape(iig.name),
                         text):
            problems.append(f"dext/project.yml: {iig.name} is not in the Sources phase")
    sources = sorted(DEXT.glob("*.cpp")) + sorted((DEXT / "portable").glob("*.cpp"))
    for src in sources:
        rel = src.relative_to(DEXT).as_posix()
        m = re.search(r"-\s*path:\s*%s\s*\n\s*compilerFlags:\s*(\[.*\])" % re.escape(rel), text)
        if not m or not all(f in m.group(1) for f in ("-Wall", "-Wextra", "-Werror")):
            problems.append(f"dext/project.yml: {rel} is missing, or lacks "
                            "compilerFlags -Wall -Wextra -Werror")
    for header in sorted((DEXT / "portable").glob("*.hpp")):
        rel = header.relative_to(DEXT).as_posix()
        if not re.search(r"-\s*path:\s*%s\s*$" % re.escape(rel), text, flags=re.M):
            problems.append(f"dext/project.yml: {rel} is not listed")
    if re.search(r"GCC_TREAT_WARNINGS_AS_ERRORS|WARNING_CFLAGS", text):
        problems.append("dext/project.yml: target-wide warning flags reach iig's generated code; "
                        "set them per file")


self_test()
check_project()
check_dext_plist()
check_host_plist()
check_entitlements(DEXT / "CybMemDriver.entitlements", {
    "com.apple.developer.driverkit": True,
    # Lets a client without com.apple.developer.driverkit.userclient-access
    # open the service at all; IOServiceDEXTEntitlements above still admits
    # only administrators (DEVELOPMENT.md, "Who may open the driver").
    "com.apple.developer.driverkit.allow-any-userclient-access": True,
})
check_entitlements(ROOT / "host-app" / "CybMemHost.entitlements", {
    "com.apple.developer.system-extension.install": True,
})
for p in problems:
    print(f"check_bundle.py: {p}", file=sys.stderr)
if not problems:
    print("bundle check: Info.plist, entitlements and project.yml have the expected shape")
sys.exit(1 if problems else 0)
