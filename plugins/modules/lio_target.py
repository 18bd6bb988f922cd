#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hakeep maintainers
# SPDX-License-Identifier: MIT
"""Brings an LIO iSCSI target to a described state (hakeep.ha.iscsi_target role)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: lio_target
short_description: An LIO iSCSI target with file-backed LUNs, CHAP ACLs and persistent reservations
version_added: "0.1.0"
description:
  - Brings the Linux kernel's iSCSI target (LIO) to the state the options describe, through
    rtslib-fb, the library targetcli uses. One target, one target portal group (tag 1) with
    one portal, file-backed (fileio, write-through) LUNs, one ACL per initiator with CHAP and
    every LUN mapped writable, CHAP required (C(authentication=1)) and no demo mode
    (C(generate_node_acls=0)).
  - Creates only what is missing, and never deletes or overwrites what holds data. A backing
    file is created sparse only when it does not exist; an existing one is used as it is and
    never resized (a size that differs is reported as a warning). Backstores and LUNs are
    never deleted. ACLs and portals of the portal group that the options do not list are
    removed.
  - Every backstore emulates SCSI-3 persistent reservations (C(emulate_pr=1)); with
    O(pr_persist) also C(force_pr_aptpl=1), so that registrations and reservations survive a
    restart of the target. The kernel changes these only while no LUN exports the backstore,
    so an exported backstore without C(emulate_pr) fails the module (no fencing without it)
    and one without C(force_pr_aptpl) is a warning.
  - Creates the C(pr) and C(alua) directories under the kernel's dbroot (and under
    C(/var/target)), where LIO keeps persistent-reservation state but which it never creates
    itself; without them a PR OUT fails.
  - Saves the configuration to O(save_file) whenever something changed or the file differs
    from the running configuration, for C(rtslib-fb-targetctl.service) to restore at boot.
  - A configuration that contradicts the options in a way only an operator should resolve (a
    backstore on another file, a LUN number that exports another backstore, a mapped LUN that
    points elsewhere) fails the module with what to change; the changes already made are
    listed.
author:
  # No GitHub handle to name: validate-modules' way of saying so.
  - hakeep maintainers (!UNKNOWN)
requirements:
  - python3-rtslib-fb (rtslib-fb) on the target host, and its kernel modules (target_core_mod, iscsi_target_mod)
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details:
      - Reads the running configuration and reports what would change. Opening it (rtslib-fb's
        RTSRoot) mounts configfs and loads target_core_mod when they are not there yet, and
        points the kernel's dbroot at /etc/rtslib-fb-target, as targetcli does; no target
        object is created or changed.
      - Without rtslib-fb (its package not installed yet), reports a change.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: partial
    details:
      - The diff lists the actions (never the CHAP password), not the configuration.
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
options:
  iqn:
    description:
      - The target's IQN, lower case with a dotted reversed domain, e.g. C(iqn.2026-11.org.example:lab).
    type: str
    required: true
  portal_address:
    description:
      - The address of the portal; C(0.0.0.0) listens on every address. An IPv6 address may be
        given with or without brackets.
    type: str
    default: 0.0.0.0
  portal_port:
    description: The portal's TCP port.
    type: int
    default: 3260
  luns:
    description: The LUNs, each a file behind a fileio backstore of the same name.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The backstore's name (letters, digits, C(_) and C(-)), unique.
        type: str
        required: true
      lun:
        description: The LUN number (0 to 255), the same in the portal group and in every ACL; unique.
        type: int
        required: true
      size:
        description:
          - The size of a new backing file, in bytes or with a binary unit (C(1G), C(512M)).
            An existing file keeps its size.
        type: raw
        required: true
      path:
        description: The backing file. Defaults to O(backing_dir)/NAME.img.
        type: path
  backing_dir:
    description:
      - The directory of the backing files of O(luns) that set no path. A missing directory
        of a new backing file is created (0700).
    type: path
    default: /var/lib/iscsi-target
  initiators:
    description:
      - The IQNs of the initiators let in, one ACL each with CHAP and every LUN mapped
        writable. ACLs of initiators not listed are removed.
    type: list
    elements: str
    default: []
  chap_username:
    description: The CHAP user every initiator logs in with.
    type: str
    required: true
  chap_password:
    description: The CHAP secret every initiator logs in with.
    type: str
    required: true
  pr_persist:
    description:
      - Keep persistent reservations across a restart of the target (C(force_pr_aptpl=1) on
        every backstore). Switched only on a backstore that no LUN exports.
    type: bool
    default: true
  save_file:
    description: Where the configuration is saved for C(targetctl restore) at boot.
    type: path
    default: /etc/rtslib-fb-target/saveconfig.json
notes:
  - Run it as root on the target host.
  - The portal group is enabled last, once its portal, LUNs and ACLs are in place.
seealso:
  - name: targetcli-fb
    description: The shell on the same library, for what this module leaves to an operator.
    link: https://github.com/open-iscsi/targetcli-fb
"""

EXAMPLES = r"""
- name: Export one 1 GiB LUN to two initiators, CHAP required
  hakeep.ha.lio_target:
    iqn: iqn.2026-11.org.example:lab
    portal_address: 192.168.60.10
    luns:
      - {name: nfs, lun: 1, size: 1G}
    initiators:
      - iqn.2026-11.org.example:nfs1
      - iqn.2026-11.org.example:nfs2
    chap_username: hakeep
    chap_password: "{{ vault_chap_password }}"

- name: See what would change, without changing anything
  hakeep.ha.lio_target:
    iqn: iqn.2026-11.org.example:lab
    luns: [{name: nfs, lun: 1, size: 1G, path: /srv/iscsi/nfs.img}]
    initiators: [iqn.2026-11.org.example:nfs1]
    chap_username: hakeep
    chap_password: "{{ vault_chap_password }}"
  check_mode: true
  register: lio
"""

RETURN = r"""
actions:
  description:
    - What was changed, one line each (in check mode what would be), in the order done; empty
      when LIO already matched. Never contains the CHAP password.
  returned: always
  type: list
  elements: str
  sample:
    - created sparse backing file /var/lib/iscsi-target/nfs.img (1073741824 bytes)
    - created fileio backstore nfs on /var/lib/iscsi-target/nfs.img
    - created acl iqn.2026-11.org.example:nfs1
    - saved the configuration to /etc/rtslib-fb-target/saveconfig.json
"""

import json
import os
import re
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.common.text.formatters import human_to_bytes

try:
    import rtslib_fb
except ImportError:
    rtslib_fb = None
    RTSLIB_IMPORT_ERROR = traceback.format_exc()
else:
    RTSLIB_IMPORT_ERROR = None

TPG_TAG = 1
# CHAP on every login; only the listed initiators (explicit ACLs), never demo mode.
TPG_ATTRIBUTES = {"authentication": "1", "generate_node_acls": "0"}
# The kernel's dbroot before rtslib-fb points it at /etc/rtslib-fb-target.
LEGACY_DBROOT = "/var/target"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class Conflict(Exception):
    """The running configuration contradicts the spec in a way only a human should fix."""


class Run(object):
    """What a run did (or, in check mode, would do) and what it warns about."""

    def __init__(self, check_mode=False):
        self.check_mode = check_mode
        self.actions = []
        self.warnings = []

    def did(self, what):
        self.actions.append(what)

    def warn(self, what):
        self.warnings.append(what)


def portal_address(address):
    """An IPv6 address goes into configfs (and comes back from it) in brackets."""
    if ":" in address and not address.startswith("["):
        return "[%s]" % address
    return address


def normalize_luns(luns, backing_dir):
    """The LUNs with their size in bytes and their path; raises ValueError on a bad entry."""
    result = []
    for lun in luns:
        name = lun["name"]
        if not NAME_PATTERN.match(name):
            raise ValueError("luns: %r is not a backstore name (1 to 64 letters, digits, _ and -)" % name)
        number = lun["lun"]
        if not 0 <= number <= 255:
            raise ValueError("luns: %s: lun %d is not between 0 and 255" % (name, number))
        try:
            size = human_to_bytes(str(lun["size"]), isbits=False)
        except ValueError as e:
            raise ValueError("luns: %s: size %r: %s" % (name, lun["size"], e))
        if size <= 0:
            raise ValueError("luns: %s: the size must be positive" % name)
        path = lun.get("path") or os.path.join(backing_dir, name + ".img")
        if not os.path.isabs(path):
            raise ValueError("luns: %s: path %s is not absolute" % (name, path))
        result.append({"name": name, "lun": number, "size": size, "path": path})
    for key in ("name", "lun"):
        values = [lun[key] for lun in result]
        dups = sorted(set(v for v in values if values.count(v) > 1))
        if dups:
            raise ValueError("luns: %s %s used more than once" % (key, ", ".join(str(d) for d in dups)))
    return result


def ensure_dirs(root, run):
    # LIO writes persistent-reservation state (APTPL) to <dbroot>/pr/aptpl_<serial> and
    # never creates pr/: without it a PR OUT fails after changing the table.
    for base in sorted({root.dbroot, LEGACY_DBROOT}):
        for sub in ("pr", "alua"):
            path = os.path.join(base, sub)
            if not os.path.isdir(path):
                if not run.check_mode:
                    os.makedirs(path, mode=0o700, exist_ok=True)
                run.did("created %s" % path)


def create_backing_file(lun, run):
    """Returns the size the backstore gets: the existing file's, or the new file's."""
    path = lun["path"]
    if os.path.lexists(path):
        if not os.path.isfile(path):
            raise Conflict("%s exists and is not a regular file" % path)
        size = os.path.getsize(path)
        if size != lun["size"]:
            run.warn(
                "%s has %d bytes, not the %d configured: used as it is (never resized)"
                % (path, size, lun["size"])
            )
        return size
    if not run.check_mode:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        # O_EXCL: never truncate a file that appeared meanwhile; it may hold data.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, lun["size"])
        finally:
            os.close(fd)
    run.did("created sparse backing file %s (%d bytes)" % (path, lun["size"]))
    return lun["size"]


def ensure_attribute(lib, so, name, want, run, essential=True):
    """Sets a backstore attribute. A non-essential one that cannot be set is a warning."""
    try:
        current = so.get_attribute(name)
    except lib.RTSLibError:
        if essential:
            raise
        run.warn("backstore %s: this kernel has no %s attribute" % (so.name, name))
        return
    if current == want:
        return
    # The kernel refuses these while the device is exported through a LUN.
    if next(iter(so.attached_luns), None) is not None:
        problem = (
            "backstore %s: %s is %s, wanted %s, and it cannot change while a LUN exports "
            "the backstore; remove its LUNs (targetcli) and run again" % (so.name, name, current, want)
        )
        if essential:
            raise Conflict(problem)
        run.warn(problem)
        return
    if not run.check_mode:
        so.set_attribute(name, want)
    run.did("backstore %s: set %s=%s" % (so.name, name, want))


def ensure_backstores(lib, root, spec, run):
    """Returns {name: storage object}; None for one that check mode would create."""
    existing = dict((so.name, so) for so in root.storage_objects if so.plugin == "fileio")
    objects = {}
    for lun in spec["luns"]:
        so = existing.get(lun["name"])
        if so is None:
            size = create_backing_file(lun, run)
            if not run.check_mode:
                # Write-through (write_back=False): a write is on the target's disk when acknowledged.
                so = lib.FileIOStorageObject(lun["name"], dev=lun["path"], size=size, write_back=False)
            run.did("created fileio backstore %s on %s" % (lun["name"], lun["path"]))
        elif os.path.realpath(so.udev_path) != os.path.realpath(lun["path"]):
            raise Conflict(
                "backstore %s uses %s, not %s; change it by hand" % (so.name, so.udev_path, lun["path"])
            )
        if so is not None:
            # Attributes first: they can only change before a LUN exports the backstore.
            # Without emulate_pr there is no fencing; without force_pr_aptpl reservations are
            # lost when the target restarts (the next takeover reserves again).
            ensure_attribute(lib, so, "emulate_pr", "1", run)
            if spec["pr_persist"]:
                ensure_attribute(lib, so, "force_pr_aptpl", "1", run, essential=False)
        elif spec["pr_persist"]:
            run.did("backstore %s: set emulate_pr=1, force_pr_aptpl=1" % lun["name"])
        else:
            run.did("backstore %s: set emulate_pr=1" % lun["name"])
        objects[lun["name"]] = so
    return objects


def ensure_target(lib, spec, run):
    """Returns the portal group; None when check mode would create it."""
    fabric = lib.FabricModule("iscsi")
    target_exists = any(t.wwn == spec["iqn"] for t in fabric.targets)
    if not target_exists:
        run.did("created target %s" % spec["iqn"])
        if run.check_mode:
            run.did("created tpg %d" % TPG_TAG)
            return None
    # Check mode only looks up (mode "lookup" never creates).
    mode = "lookup" if run.check_mode else "any"
    target = lib.Target(fabric, spec["iqn"], mode=mode)
    if not any(t.tag == TPG_TAG for t in target.tpgs):
        run.did("created tpg %d" % TPG_TAG)
        if run.check_mode:
            return None
    return lib.TPG(target, TPG_TAG, mode=mode)


def ensure_tpg_attributes(tpg, run):
    for name, want in sorted(TPG_ATTRIBUTES.items()):
        if tpg is None or tpg.get_attribute(name) != want:
            if not run.check_mode:
                tpg.set_attribute(name, want)
            run.did("tpg %d: set %s=%s" % (TPG_TAG, name, want))


def ensure_portals(lib, tpg, spec, run):
    want = (spec["portal"]["address"], int(spec["portal"]["port"]))
    current = list(tpg.network_portals) if tpg is not None else []
    # Stale ones go first: 0.0.0.0:3260 next to ADDRESS:3260 would not bind.
    for portal in current:
        if (portal.ip_address, portal.port) != want:
            if not run.check_mode:
                portal.delete()
            run.did("removed portal %s:%d" % (portal.ip_address, portal.port))
    if not any((p.ip_address, p.port) == want for p in current):
        if not run.check_mode:
            lib.NetworkPortal(tpg, want[0], want[1], mode="create")
        run.did("created portal %s:%d" % want)


def same_object(a, b):
    return a.plugin == b.plugin and a.name == b.name


def ensure_luns(lib, tpg, spec, objects, run):
    current = dict((lun.lun, lun) for lun in tpg.luns) if tpg is not None else {}
    for lun in spec["luns"]:
        so = objects[lun["name"]]
        existing = current.get(lun["lun"])
        if existing is None:
            if not run.check_mode:
                lib.LUN(tpg, lun["lun"], so)
            run.did("created lun %d (%s)" % (lun["lun"], lun["name"]))
        elif so is None or not same_object(existing.storage_object, so):
            raise Conflict(
                "lun %d exports %s, not %s; change it by hand"
                % (lun["lun"], existing.storage_object.name, lun["name"])
            )


def ensure_acl_luns(lib, acl, wwn, spec, run):
    mapped = dict((m.mapped_lun, m) for m in acl.mapped_luns) if acl is not None else {}
    for lun in spec["luns"]:
        mlun = mapped.get(lun["lun"])
        if mlun is None:
            if not run.check_mode:
                lib.MappedLUN(acl, lun["lun"], lun["lun"], write_protect=False)
            run.did("acl %s: mapped lun %d" % (wwn, lun["lun"]))
        elif mlun.tpg_lun.lun != lun["lun"]:
            raise Conflict(
                "acl %s: mapped lun %d points to tpg lun %d; change it by hand"
                % (wwn, lun["lun"], mlun.tpg_lun.lun)
            )
        elif mlun.write_protect:
            if not run.check_mode:
                mlun.write_protect = False
            run.did("acl %s: lun %d made writable" % (wwn, lun["lun"]))


def ensure_acls(lib, tpg, spec, run):
    chap = spec["chap"]
    current = dict((acl.node_wwn, acl) for acl in tpg.node_acls) if tpg is not None else {}
    for wwn in spec["initiators"]:
        acl = current.get(wwn)
        if acl is None:
            if not run.check_mode:
                acl = lib.NodeACL(tpg, wwn, mode="create")
            run.did("created acl %s" % wwn)
        if acl is None or acl.chap_userid != chap["username"]:
            if not run.check_mode:
                acl.chap_userid = chap["username"]
            run.did("acl %s: set the CHAP user" % wwn)
        if acl is None or acl.chap_password != chap["password"]:
            if not run.check_mode:
                acl.chap_password = chap["password"]
            run.did("acl %s: set the CHAP password" % wwn)
        ensure_acl_luns(lib, acl, wwn, spec, run)
    for wwn, acl in sorted(current.items()):
        if wwn not in spec["initiators"]:
            if not run.check_mode:
                acl.delete()
            run.did("removed acl %s" % wwn)


def ensure_enabled(tpg, run):
    # Last: initiators can log in once everything before is in place.
    if tpg is None or not tpg.enable:
        if not run.check_mode:
            tpg.enable = True
        run.did("tpg %d enabled" % TPG_TAG)


def ensure_saved(root, spec, run):
    save_file = spec["save_file"]
    running = json.loads(json.dumps(root.dump()))
    try:
        with open(save_file, encoding="utf-8") as f:
            saved = json.load(f)
    except (OSError, ValueError):
        saved = None
    if run.actions or saved != running:
        if not run.check_mode:
            root.save_to_file(save_file)
        run.did("saved the configuration to %s" % save_file)


def apply(lib, spec, run):
    """Brings LIO (through lib, rtslib_fb's API) to spec; records into run. May raise
    Conflict, lib.RTSLibError or OSError, with run.actions holding what was done before."""
    root = lib.RTSRoot()
    ensure_dirs(root, run)
    objects = ensure_backstores(lib, root, spec, run)
    tpg = ensure_target(lib, spec, run)
    ensure_tpg_attributes(tpg, run)
    ensure_portals(lib, tpg, spec, run)
    ensure_luns(lib, tpg, spec, objects, run)
    ensure_acls(lib, tpg, spec, run)
    ensure_enabled(tpg, run)
    ensure_saved(root, spec, run)
    return run


def argument_spec():
    return dict(
        iqn=dict(type="str", required=True),
        portal_address=dict(type="str", default="0.0.0.0"),
        portal_port=dict(type="int", default=3260),
        luns=dict(
            type="list",
            elements="dict",
            default=[],
            options=dict(
                name=dict(type="str", required=True),
                lun=dict(type="int", required=True),
                size=dict(type="raw", required=True),
                path=dict(type="path"),
            ),
        ),
        backing_dir=dict(type="path", default="/var/lib/iscsi-target"),
        initiators=dict(type="list", elements="str", default=[]),
        chap_username=dict(type="str", required=True),
        chap_password=dict(type="str", required=True, no_log=True),
        pr_persist=dict(type="bool", default=True),
        save_file=dict(type="path", default="/etc/rtslib-fb-target/saveconfig.json"),
    )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    p = module.params
    try:
        luns = normalize_luns(p["luns"], p["backing_dir"])
    except ValueError as e:
        module.fail_json(msg=str(e))
    initiators = []
    for wwn in p["initiators"]:
        if wwn not in initiators:
            initiators.append(wwn)
    spec = {
        "iqn": p["iqn"],
        "portal": {"address": portal_address(p["portal_address"]), "port": p["portal_port"]},
        "luns": luns,
        "initiators": initiators,
        "chap": {"username": p["chap_username"], "password": p["chap_password"]},
        "pr_persist": p["pr_persist"],
        "save_file": p["save_file"],
    }

    if rtslib_fb is None:
        if module.check_mode:
            module.exit_json(changed=True, actions=["configured LIO (rtslib-fb is not installed yet)"])
        module.fail_json(msg=missing_required_lib("rtslib-fb (Debian: python3-rtslib-fb)"),
                         exception=RTSLIB_IMPORT_ERROR)

    run = Run(check_mode=module.check_mode)
    try:
        apply(rtslib_fb, spec, run)
    except (Conflict, rtslib_fb.RTSLibError, OSError) as e:
        for warning in run.warnings:
            module.warn(warning)
        done = "; done before: " + ", ".join(run.actions) if run.actions else ""
        module.fail_json(msg="%s%s" % (e, done), actions=run.actions)

    for warning in run.warnings:
        module.warn(warning)
    result = dict(changed=bool(run.actions), actions=run.actions)
    if module._diff and run.actions:
        result["diff"] = dict(prepared="".join("+ %s\n" % a for a in run.actions))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
