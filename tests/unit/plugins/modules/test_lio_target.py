# -*- coding: utf-8 -*-
# Copyright: hakeep maintainers
# SPDX-License-Identifier: MIT
"""Unit tests of hakeep.ha.lio_target against the in-memory LIO of conftest.py."""

from __future__ import annotations

import json
import os

import pytest

from ansible.module_utils import basic
from ansible.module_utils.common.text.converters import to_bytes
from ansible_collections.hakeep.ha.plugins.modules import lio_target

IQN = "iqn.2026-11.org.example:lab"
NODE1 = "iqn.2026-11.org.example:nfs1"
NODE2 = "iqn.2026-11.org.example:nfs2"
PASSWORD = "s3cret-chap-value"
GIB = 1024 ** 3


def make_spec(tmp_path, **overrides):
    spec = {
        "iqn": IQN,
        "portal": {"address": "192.168.60.10", "port": 3260},
        "luns": [{"name": "nfs", "lun": 1, "size": GIB, "path": str(tmp_path / "luns" / "nfs.img")}],
        "initiators": [NODE1, NODE2],
        "chap": {"username": "hakeep", "password": PASSWORD},
        "pr_persist": True,
        "save_file": str(tmp_path / "saveconfig.json"),
    }
    spec.update(overrides)
    return spec


def apply(lio, spec, check_mode=False):
    return lio_target.apply(lio, spec, lio_target.Run(check_mode=check_mode))


def converge(lio, tmp_path, **overrides):
    spec = make_spec(tmp_path, **overrides)
    apply(lio, spec)
    del lio.changes[:]
    del lio.saves[:]
    return spec


# A fresh target ---------------------------------------------------------------------------

def test_fresh_lio_gets_everything_in_order(lio, tmp_path):
    spec = make_spec(tmp_path)
    run = apply(lio, spec)

    backing = tmp_path / "luns" / "nfs.img"
    assert backing.is_file()
    assert os.path.getsize(str(backing)) == GIB
    assert os.stat(str(backing)).st_blocks == 0, "the backing file must be sparse"
    assert oct(os.stat(str(backing)).st_mode & 0o777) == "0o600"

    so = lio.storage_objects[0]
    assert (so.name, so.udev_path, so.size, so.write_back) == ("nfs", str(backing), GIB, False)
    assert so.attributes == {"emulate_pr": "1", "force_pr_aptpl": "1"}

    tpg = lio.targets[0].tpgs[0]
    assert lio.targets[0].wwn == IQN and tpg.tag == 1
    assert tpg.attributes == {"authentication": "1", "generate_node_acls": "0"}
    assert [(p.ip_address, p.port) for p in tpg.network_portals] == [("192.168.60.10", 3260)]
    assert [(lun.lun, lun.storage_object.name) for lun in tpg.luns] == [(1, "nfs")]
    assert [acl.node_wwn for acl in tpg.node_acls] == [NODE1, NODE2]
    for acl in tpg.node_acls:
        assert (acl.chap_userid, acl.chap_password) == ("hakeep", PASSWORD)
        assert [(m.mapped_lun, m.tpg_lun.lun, m.write_protect) for m in acl.mapped_luns] == [(1, 1, False)]
    assert tpg.enable

    for base in (lio.dbroot, lio_target.LEGACY_DBROOT):
        for sub in ("pr", "alua"):
            assert os.path.isdir(os.path.join(base, sub))

    # The portal group is enabled once the rest is there, and the configuration saved last.
    assert lio.changes[-1] == "tpg enable=True"
    assert run.actions[-2:] == ["tpg 1 enabled", "saved the configuration to %s" % spec["save_file"]]
    assert lio.saves == [spec["save_file"]]
    with open(spec["save_file"], encoding="utf-8") as f:
        assert json.load(f) == lio.RTSRoot().dump()
    assert run.warnings == []
    assert not any(PASSWORD in action for action in run.actions)


def test_second_run_changes_nothing(lio, tmp_path):
    spec = converge(lio, tmp_path)
    run = apply(lio, spec)
    assert run.actions == []
    assert run.warnings == []
    assert lio.changes == [] and lio.saves == []


def test_check_mode_on_a_fresh_target_reports_and_changes_nothing(lio, tmp_path):
    spec = make_spec(tmp_path)
    run = apply(lio, spec, check_mode=True)
    assert lio.changes == [] and lio.saves == []
    assert lio.targets == [] and lio.storage_objects == []
    assert not (tmp_path / "luns").exists()
    assert not os.path.exists(os.path.join(lio.dbroot, "pr"))
    assert not os.path.exists(spec["save_file"])
    for expected in ("created sparse backing file %s/luns/nfs.img (%d bytes)" % (tmp_path, GIB),
                     "created fileio backstore nfs on %s/luns/nfs.img" % tmp_path,
                     "created target %s" % IQN, "created tpg 1",
                     "created portal 192.168.60.10:3260", "created lun 1 (nfs)",
                     "created acl %s" % NODE1, "acl %s: mapped lun 1" % NODE2,
                     "tpg 1 enabled", "saved the configuration to %s" % spec["save_file"]):
        assert expected in run.actions


def test_check_mode_on_a_converged_target_reports_nothing(lio, tmp_path):
    spec = converge(lio, tmp_path)
    run = apply(lio, spec, check_mode=True)
    assert run.actions == [] and lio.changes == []


def test_check_mode_predicts_what_a_real_run_does(lio, tmp_path):
    spec = converge(lio, tmp_path)
    tpg = lio.targets[0].tpgs[0]
    tpg.node_acls[0]._password = "old"
    tpg.node_acls[1].mapped_luns[0]._write_protect = True
    tpg.attributes["authentication"] = "0"
    spec["initiators"] = [NODE1, "iqn.2026-11.org.example:nfs3"]
    planned = apply(lio, spec, check_mode=True)
    assert lio.changes == []
    done = apply(lio, spec)
    assert planned.actions == done.actions


def test_check_mode_with_the_target_but_no_portal_group(lio, tmp_path):
    spec = make_spec(tmp_path)
    lio.add_target(IQN)
    run = apply(lio, spec, check_mode=True)
    assert "created target %s" % IQN not in run.actions
    assert "created tpg 1" in run.actions
    assert lio.changes == []


# Backing files and backstores -------------------------------------------------------------

def test_existing_backing_file_is_used_as_it_is(lio, tmp_path):
    backing = tmp_path / "luns" / "nfs.img"
    backing.parent.mkdir()
    backing.write_bytes(b"data" * 256)
    run = apply(lio, make_spec(tmp_path))
    assert backing.read_bytes() == b"data" * 256, "never truncated or resized"
    assert lio.storage_objects[0].size == 1024
    assert run.warnings == ["%s has 1024 bytes, not the %d configured: used as it is (never resized)"
                            % (backing, GIB)]
    assert not [a for a in run.actions if "backing file" in a]


def test_backing_path_that_is_not_a_file_is_a_conflict(lio, tmp_path):
    (tmp_path / "luns" / "nfs.img").mkdir(parents=True)
    with pytest.raises(lio_target.Conflict, match="exists and is not a regular file"):
        apply(lio, make_spec(tmp_path))
    assert lio.storage_objects == []


def test_backstore_on_another_file_is_a_conflict(lio, tmp_path):
    lio.add_backstore("nfs", "/srv/elsewhere.img", attributes={"emulate_pr": "1", "force_pr_aptpl": "1"})
    with pytest.raises(lio_target.Conflict, match="backstore nfs uses /srv/elsewhere.img, not .*nfs.img"):
        apply(lio, make_spec(tmp_path))


def test_backstore_of_another_plugin_with_the_same_name_is_not_taken(lio, tmp_path):
    lio.add_backstore("nfs", "/dev/sdz", plugin="block")
    run = apply(lio, make_spec(tmp_path))
    assert "created fileio backstore nfs on %s/luns/nfs.img" % tmp_path in run.actions


def test_unexported_backstore_gets_its_attributes(lio, tmp_path):
    backing = tmp_path / "nfs.img"
    backing.write_bytes(b"")
    lio.add_backstore("nfs", str(backing), size=0)
    run = apply(lio, make_spec(tmp_path, luns=[{"name": "nfs", "lun": 1, "size": 1, "path": str(backing)}]))
    assert lio.storage_objects[0].attributes == {"emulate_pr": "1", "force_pr_aptpl": "1"}
    assert "backstore nfs: set emulate_pr=1" in run.actions
    assert "backstore nfs: set force_pr_aptpl=1" in run.actions
    assert not [a for a in run.actions if "created fileio backstore" in a]


def test_exported_backstore_without_emulate_pr_fails(lio, tmp_path):
    spec = converge(lio, tmp_path)
    lio.storage_objects[0].attributes["emulate_pr"] = "0"
    with pytest.raises(lio_target.Conflict, match="emulate_pr is 0, wanted 1, and it cannot change"):
        apply(lio, spec)
    assert lio.changes == []


def test_exported_backstore_without_force_pr_aptpl_is_a_warning(lio, tmp_path):
    spec = converge(lio, tmp_path)
    lio.storage_objects[0].attributes["force_pr_aptpl"] = "0"
    run = apply(lio, spec)
    assert lio.storage_objects[0].attributes["force_pr_aptpl"] == "0"
    assert len(run.warnings) == 1 and "force_pr_aptpl is 0, wanted 1" in run.warnings[0]
    # Only the saved file, which still says 1, follows the running configuration.
    assert run.actions == ["saved the configuration to %s" % spec["save_file"]]


def test_kernel_without_force_pr_aptpl_is_a_warning(lio, tmp_path):
    spec = converge(lio, tmp_path)
    del lio.storage_objects[0].attributes["force_pr_aptpl"]
    run = apply(lio, spec)
    assert run.warnings == ["backstore nfs: this kernel has no force_pr_aptpl attribute"]


def test_kernel_without_emulate_pr_fails(lio, tmp_path):
    spec = converge(lio, tmp_path)
    del lio.storage_objects[0].attributes["emulate_pr"]
    with pytest.raises(lio.RTSLibError, match="emulate_pr"):
        apply(lio, spec)


def test_without_pr_persist_force_pr_aptpl_is_left_alone(lio, tmp_path):
    apply(lio, make_spec(tmp_path, pr_persist=False))
    assert lio.storage_objects[0].attributes == {"emulate_pr": "1", "force_pr_aptpl": "0"}


# Portals, LUNs, ACLs ------------------------------------------------------------------------

def test_stale_portals_go_before_the_new_one(lio, tmp_path):
    spec = converge(lio, tmp_path)
    spec["portal"] = {"address": "0.0.0.0", "port": 3260}
    run = apply(lio, spec)
    assert lio.changes[:2] == ["delete portal 192.168.60.10:3260", "create portal 0.0.0.0:3260"]
    assert run.actions[:2] == ["removed portal 192.168.60.10:3260", "created portal 0.0.0.0:3260"]


@pytest.mark.parametrize("given, wanted", [
    ("0.0.0.0", "0.0.0.0"),
    ("192.168.60.10", "192.168.60.10"),
    ("fd00::10", "[fd00::10]"),
    ("[fd00::10]", "[fd00::10]"),
])
def test_portal_address(given, wanted):
    assert lio_target.portal_address(given) == wanted


def test_lun_number_that_exports_another_backstore_is_a_conflict(lio, tmp_path):
    spec = converge(lio, tmp_path)
    other = lio.add_backstore("other", "/srv/other.img", attributes={"emulate_pr": "1", "force_pr_aptpl": "1"})
    lio.targets[0].tpgs[0].luns[0].storage_object = other
    with pytest.raises(lio_target.Conflict, match="lun 1 exports other, not nfs"):
        apply(lio, spec)


def test_a_new_lun_is_added_and_mapped_for_every_acl(lio, tmp_path):
    spec = converge(lio, tmp_path)
    spec["luns"] = spec["luns"] + [{"name": "db", "lun": 2, "size": 4096, "path": str(tmp_path / "db.img")}]
    run = apply(lio, spec)
    tpg = lio.targets[0].tpgs[0]
    assert sorted(lun.lun for lun in tpg.luns) == [1, 2]
    for acl in tpg.node_acls:
        assert sorted(m.mapped_lun for m in acl.mapped_luns) == [1, 2]
    assert "created lun 2 (db)" in run.actions


def test_acls_follow_the_initiators(lio, tmp_path):
    spec = converge(lio, tmp_path)
    spec["initiators"] = [NODE2, "iqn.2026-11.org.example:nfs3"]
    run = apply(lio, spec)
    tpg = lio.targets[0].tpgs[0]
    assert sorted(acl.node_wwn for acl in tpg.node_acls) == [NODE2, "iqn.2026-11.org.example:nfs3"]
    assert "removed acl %s" % NODE1 in run.actions
    assert "created acl iqn.2026-11.org.example:nfs3" in run.actions


def test_chap_credentials_are_brought_in_line(lio, tmp_path):
    spec = converge(lio, tmp_path)
    acl = lio.targets[0].tpgs[0].node_acls[0]
    acl._userid, acl._password = "someone", "old"
    run = apply(lio, spec)
    assert (acl.chap_userid, acl.chap_password) == ("hakeep", PASSWORD)
    assert run.actions[:2] == ["acl %s: set the CHAP user" % NODE1, "acl %s: set the CHAP password" % NODE1]
    assert not any(PASSWORD in a or "old" in a for a in run.actions)


def test_write_protected_mapped_lun_is_made_writable(lio, tmp_path):
    spec = converge(lio, tmp_path)
    mlun = lio.targets[0].tpgs[0].node_acls[1].mapped_luns[0]
    mlun._write_protect = True
    run = apply(lio, spec)
    assert mlun.write_protect is False
    assert "acl %s: lun 1 made writable" % NODE2 in run.actions


def test_mapped_lun_pointing_elsewhere_is_a_conflict(lio, tmp_path):
    spec = converge(lio, tmp_path)
    tpg = lio.targets[0].tpgs[0]
    tpg.node_acls[0].mapped_luns[0].tpg_lun = lio.make_lun(7)
    with pytest.raises(lio_target.Conflict, match="mapped lun 1 points to tpg lun 7"):
        apply(lio, spec)


def test_portal_group_attributes_and_enable(lio, tmp_path):
    spec = converge(lio, tmp_path)
    tpg = lio.targets[0].tpgs[0]
    tpg.attributes["generate_node_acls"] = "1"
    tpg._enable = False
    run = apply(lio, spec)
    assert tpg.attributes["generate_node_acls"] == "0" and tpg.enable
    assert run.actions == ["tpg 1: set generate_node_acls=0", "tpg 1 enabled",
                           "saved the configuration to %s" % spec["save_file"]]


# Saving ----------------------------------------------------------------------------------

@pytest.mark.parametrize("content", [None, "not json", '{"targets": []}'])
def test_saved_file_that_differs_is_rewritten(lio, tmp_path, content):
    spec = converge(lio, tmp_path)
    if content is None:
        os.unlink(spec["save_file"])
    else:
        with open(spec["save_file"], "w", encoding="utf-8") as f:
            f.write(content)
    run = apply(lio, spec)
    assert run.actions == ["saved the configuration to %s" % spec["save_file"]]
    assert lio.saves == [spec["save_file"]]


def test_failure_keeps_what_was_done(lio, tmp_path):
    spec = make_spec(tmp_path)
    lio.fail_on = "create portal"
    run = lio_target.Run()
    with pytest.raises(lio.RTSLibError):
        lio_target.apply(lio, spec, run)
    assert "created target %s" % IQN in run.actions
    assert lio.saves == []


# The options -------------------------------------------------------------------------------

def test_normalize_luns_defaults_and_sizes():
    luns = lio_target.normalize_luns(
        [{"name": "nfs", "lun": 1, "size": "1G", "path": None},
         {"name": "db_2", "lun": 0, "size": 4096, "path": "/srv/db.img"},
         {"name": "web-1", "lun": 255, "size": "512M", "path": ""}],
        "/var/lib/iscsi-target")
    assert luns == [
        {"name": "nfs", "lun": 1, "size": GIB, "path": "/var/lib/iscsi-target/nfs.img"},
        {"name": "db_2", "lun": 0, "size": 4096, "path": "/srv/db.img"},
        {"name": "web-1", "lun": 255, "size": 512 * 1024 ** 2, "path": "/var/lib/iscsi-target/web-1.img"},
    ]


@pytest.mark.parametrize("luns, message", [
    ([{"name": "bad name", "lun": 1, "size": 1, "path": None}], "is not a backstore name"),
    ([{"name": "x", "lun": 256, "size": 1, "path": None}], "lun 256 is not between 0 and 255"),
    ([{"name": "x", "lun": -1, "size": 1, "path": None}], "is not between 0 and 255"),
    ([{"name": "x", "lun": 1, "size": 0, "path": None}], "the size must be positive"),
    ([{"name": "x", "lun": 1, "size": "lots", "path": None}], "size 'lots'"),
    ([{"name": "x", "lun": 1, "size": 1, "path": "rel/x.img"}], "is not absolute"),
    ([{"name": "x", "lun": 1, "size": 1, "path": None},
      {"name": "x", "lun": 2, "size": 1, "path": None}], "name x used more than once"),
    ([{"name": "x", "lun": 1, "size": 1, "path": None},
      {"name": "y", "lun": 1, "size": 1, "path": None}], "lun 1 used more than once"),
])
def test_normalize_luns_rejects(luns, message):
    with pytest.raises(ValueError, match=message):
        lio_target.normalize_luns(luns, "/var/lib/iscsi-target")


# The module --------------------------------------------------------------------------------

def run_module(monkeypatch, capsys, args, lib):
    """Runs main() with args, rtslib_fb replaced by lib; returns (exit code, JSON result)."""
    monkeypatch.setattr(lio_target, "rtslib_fb", lib)
    monkeypatch.setattr(basic, "_ANSIBLE_ARGS", to_bytes(json.dumps({"ANSIBLE_MODULE_ARGS": args})))
    # ansible-core 2.19 and later read the arguments through a profile of their own.
    try:
        from ansible.module_utils.testing import patch_module_args  # pylint: disable=import-outside-toplevel
    except ImportError:
        patch_module_args = None
    with pytest.raises(SystemExit) as exited:
        if patch_module_args is not None:
            with patch_module_args(args):
                lio_target.main()
        else:
            lio_target.main()
    out = capsys.readouterr().out
    return exited.value.code, json.loads(out), out


def module_args(tmp_path, **overrides):
    args = {
        "iqn": IQN,
        "portal_address": "192.168.60.10",
        "luns": [{"name": "nfs", "lun": 1, "size": "1G"}],
        "backing_dir": str(tmp_path / "luns"),
        "initiators": [NODE1, NODE2, NODE1],
        "chap_username": "hakeep",
        "chap_password": PASSWORD,
        "save_file": str(tmp_path / "saveconfig.json"),
    }
    args.update(overrides)
    return args


def test_module_applies_and_reports(monkeypatch, capsys, lio, tmp_path):
    code, result, out = run_module(monkeypatch, capsys, module_args(tmp_path), lio)
    assert code == 0
    assert result["changed"] is True
    assert "created fileio backstore nfs on %s/luns/nfs.img" % tmp_path in result["actions"]
    # Initiators listed twice get one ACL.
    assert [acl.node_wwn for acl in lio.targets[0].tpgs[0].node_acls] == [NODE1, NODE2]
    assert PASSWORD not in out
    assert "diff" not in result

    code, result, out = run_module(monkeypatch, capsys, module_args(tmp_path), lio)
    assert (code, result["changed"], result["actions"]) == (0, False, [])


def test_module_check_mode_and_diff(monkeypatch, capsys, lio, tmp_path):
    args = module_args(tmp_path, _ansible_check_mode=True, _ansible_diff=True)
    code, result, out = run_module(monkeypatch, capsys, args, lio)
    assert code == 0 and result["changed"] is True
    assert lio.changes == [] and not (tmp_path / "luns").exists()
    assert "+ created target %s\n" % IQN in result["diff"]["prepared"]
    assert PASSWORD not in out


def test_module_ipv6_portal(monkeypatch, capsys, lio, tmp_path):
    code, result, out = run_module(monkeypatch, capsys, module_args(tmp_path, portal_address="fd00::10"), lio)
    assert code == 0
    assert [(p.ip_address, p.port) for p in lio.targets[0].tpgs[0].network_portals] == [("[fd00::10]", 3260)]


def test_module_warnings_are_ansible_warnings(monkeypatch, capsys, lio, tmp_path):
    (tmp_path / "luns").mkdir()
    (tmp_path / "luns" / "nfs.img").write_bytes(b"x")
    code, result, out = run_module(monkeypatch, capsys, module_args(tmp_path), lio)
    assert code == 0
    assert any("used as it is (never resized)" in w for w in result["warnings"])


def test_module_conflict_fails_with_what_was_done(monkeypatch, capsys, lio, tmp_path):
    lio.add_backstore("nfs", "/srv/elsewhere.img")
    code, result, out = run_module(monkeypatch, capsys, module_args(tmp_path), lio)
    assert code == 1 and result["failed"]
    assert result["msg"].startswith("backstore nfs uses /srv/elsewhere.img, not %s/luns/nfs.img" % tmp_path)
    assert "done before: created %s/pr" % lio.dbroot in result["msg"]
    assert result["actions"][0] == "created %s/pr" % lio.dbroot


def test_module_kernel_error_fails(monkeypatch, capsys, lio, tmp_path):
    lio.fail_on = "create target"
    code, result, out = run_module(monkeypatch, capsys, module_args(tmp_path), lio)
    assert code == 1 and "kernel refused: create target" in result["msg"]
    assert PASSWORD not in out


def test_module_bad_lun_fails_before_touching_lio(monkeypatch, capsys, lio, tmp_path):
    args = module_args(tmp_path, luns=[{"name": "nfs", "lun": 300, "size": "1G"}])
    code, result, out = run_module(monkeypatch, capsys, args, lio)
    assert code == 1 and "lun 300 is not between 0 and 255" in result["msg"]
    assert lio.changes == []


def test_module_requires_its_arguments(monkeypatch, capsys, lio, tmp_path):
    args = module_args(tmp_path)
    del args["chap_password"]
    code, result, out = run_module(monkeypatch, capsys, args, lio)
    assert code == 1 and "chap_password" in result["msg"]


def test_module_without_rtslib(monkeypatch, capsys, tmp_path):
    code, result, out = run_module(monkeypatch, capsys, module_args(tmp_path), None)
    assert code == 1 and "rtslib-fb" in result["msg"]

    args = module_args(tmp_path, _ansible_check_mode=True)
    code, result, out = run_module(monkeypatch, capsys, args, None)
    assert code == 0 and result["changed"] is True
