# -*- coding: utf-8 -*-
# Copyright: hakeep maintainers
# SPDX-License-Identifier: MIT
"""An in-memory LIO with the part of rtslib-fb's API that the lio_target module uses, with
rtslib-fb's rules where the module depends on them (lookup/create modes, attributes the
kernel refuses to change while a LUN exports the backstore). Every change is counted, so a
test can tell that check mode or a second run changed nothing."""

from __future__ import annotations

import json

import pytest


class RTSLibError(Exception):
    pass


class FakeStorageObject(object):
    def __init__(self, lio, name, dev, size, write_back, plugin="fileio", attributes=None):
        self._lio = lio
        self.name = name
        self.plugin = plugin
        self.udev_path = dev
        self.size = size
        self.write_back = write_back
        self.attributes = dict(attributes if attributes is not None
                               else {"emulate_pr": "0", "force_pr_aptpl": "0"})

    @property
    def attached_luns(self):
        for target in self._lio.targets:
            for tpg in target.tpgs:
                for lun in tpg.luns:
                    if lun.storage_object is self:
                        yield lun

    def get_attribute(self, name):
        if name not in self.attributes:
            raise RTSLibError("Cannot find attribute: %s" % name)
        return self.attributes[name]

    def set_attribute(self, name, value):
        if name not in self.attributes:
            raise RTSLibError("Cannot find attribute: %s" % name)
        if next(iter(self.attached_luns), None) is not None:
            raise RTSLibError("Cannot set attribute %s: device exported" % name)
        self._lio.change("set %s %s=%s" % (self.name, name, value))
        self.attributes[name] = value

    def dump(self):
        return {"name": self.name, "plugin": self.plugin, "dev": self.udev_path,
                "size": self.size, "write_back": self.write_back,
                "attributes": dict(self.attributes)}


class FakeTarget(object):
    def __init__(self, wwn):
        self.wwn = wwn
        self.tpgs = []


class FakeTPG(object):
    def __init__(self, lio, target, tag):
        self._lio = lio
        self.parent_target = target
        self.tag = tag
        self.attributes = {"authentication": "0", "generate_node_acls": "1"}
        self._enable = False
        self.network_portals = []
        self.luns = []
        self.node_acls = []

    def get_attribute(self, name):
        return self.attributes[name]

    def set_attribute(self, name, value):
        self._lio.change("tpg set %s=%s" % (name, value))
        self.attributes[name] = value

    @property
    def enable(self):
        return self._enable

    @enable.setter
    def enable(self, value):
        self._lio.change("tpg enable=%s" % value)
        self._enable = bool(value)


class FakePortal(object):
    def __init__(self, lio, tpg, ip_address, port):
        self._lio = lio
        self._tpg = tpg
        self.ip_address = ip_address
        self.port = port

    def delete(self):
        self._lio.change("delete portal %s:%d" % (self.ip_address, self.port))
        self._tpg.network_portals.remove(self)


class FakeLUN(object):
    def __init__(self, lun, storage_object):
        self.lun = lun
        self.storage_object = storage_object


class FakeMappedLUN(object):
    def __init__(self, lio, mapped_lun, tpg_lun, write_protect):
        self._lio = lio
        self.mapped_lun = mapped_lun
        self.tpg_lun = tpg_lun
        self._write_protect = write_protect

    @property
    def write_protect(self):
        return self._write_protect

    @write_protect.setter
    def write_protect(self, value):
        self._lio.change("mapped lun %d write_protect=%s" % (self.mapped_lun, value))
        self._write_protect = value


class FakeACL(object):
    def __init__(self, lio, tpg, wwn):
        self._lio = lio
        self._tpg = tpg
        self.node_wwn = wwn
        self._userid = ""
        self._password = ""
        self.mapped_luns = []

    @property
    def chap_userid(self):
        return self._userid

    @chap_userid.setter
    def chap_userid(self, value):
        self._lio.change("acl %s userid" % self.node_wwn)
        self._userid = value

    @property
    def chap_password(self):
        return self._password

    @chap_password.setter
    def chap_password(self, value):
        self._lio.change("acl %s password" % self.node_wwn)
        self._password = value

    def delete(self):
        self._lio.change("delete acl %s" % self.node_wwn)
        self._tpg.node_acls.remove(self)


class FakeRoot(object):
    def __init__(self, lio):
        self._lio = lio

    @property
    def dbroot(self):
        return self._lio.dbroot

    @property
    def storage_objects(self):
        return list(self._lio.storage_objects)

    def dump(self):
        lio = self._lio
        return {
            "storage_objects": [so.dump() for so in lio.storage_objects],
            "targets": [
                {"wwn": t.wwn, "tpgs": [
                    {"tag": tpg.tag, "enable": tpg.enable, "attributes": dict(tpg.attributes),
                     "portals": [[p.ip_address, p.port] for p in tpg.network_portals],
                     "luns": [[lun.lun, lun.storage_object.name] for lun in tpg.luns],
                     "node_acls": [
                         {"node_wwn": acl.node_wwn, "chap_userid": acl.chap_userid,
                          "chap_password": acl.chap_password,
                          "mapped_luns": [[m.mapped_lun, m.tpg_lun.lun, m.write_protect]
                                          for m in acl.mapped_luns]}
                         for acl in tpg.node_acls]}
                    for tpg in t.tpgs]}
                for t in lio.targets],
        }

    def save_to_file(self, path):
        self._lio.saves.append(path)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.dump(), f)


class FakeFabric(object):
    def __init__(self, lio):
        self._lio = lio

    @property
    def targets(self):
        return list(self._lio.targets)


class FakeLIO(object):
    """Stands in for the rtslib_fb module: lio_target calls lib.RTSRoot(), lib.Target(...)."""

    RTSLibError = RTSLibError

    def __init__(self, dbroot):
        self.dbroot = dbroot
        self.storage_objects = []
        self.targets = []
        self.saves = []
        self.changes = []
        self.fail_on = None

    def change(self, what):
        if self.fail_on and self.fail_on in what:
            raise RTSLibError("kernel refused: %s" % what)
        self.changes.append(what)

    # rtslib_fb's API ---------------------------------------------------------------------
    def RTSRoot(self):
        return FakeRoot(self)

    def FabricModule(self, name):
        assert name == "iscsi"
        return FakeFabric(self)

    def Target(self, fabric, wwn, mode="any"):
        found = [t for t in self.targets if t.wwn == wwn]
        if found:
            if mode == "create":
                raise RTSLibError("target %s exists" % wwn)
            return found[0]
        if mode == "lookup":
            raise RTSLibError("no target %s" % wwn)
        self.change("create target %s" % wwn)
        target = FakeTarget(wwn)
        self.targets.append(target)
        return target

    def TPG(self, target, tag, mode="any"):
        found = [t for t in target.tpgs if t.tag == tag]
        if found:
            if mode == "create":
                raise RTSLibError("tpg %d exists" % tag)
            return found[0]
        if mode == "lookup":
            raise RTSLibError("no tpg %d" % tag)
        self.change("create tpg %d" % tag)
        tpg = FakeTPG(self, target, tag)
        target.tpgs.append(tpg)
        return tpg

    def FileIOStorageObject(self, name, dev=None, size=None, write_back=True):
        assert not [so for so in self.storage_objects if so.name == name and so.plugin == "fileio"]
        self.change("create backstore %s" % name)
        so = FakeStorageObject(self, name, dev, size, write_back)
        self.storage_objects.append(so)
        return so

    def NetworkPortal(self, tpg, ip_address, port, mode="any"):
        assert mode == "create"
        assert not [p for p in tpg.network_portals if (p.ip_address, p.port) == (ip_address, port)]
        self.change("create portal %s:%d" % (ip_address, port))
        portal = FakePortal(self, tpg, ip_address, port)
        tpg.network_portals.append(portal)
        return portal

    def LUN(self, tpg, lun, storage_object):
        assert storage_object is not None
        assert not [x for x in tpg.luns if x.lun == lun]
        self.change("create lun %d" % lun)
        new = FakeLUN(lun, storage_object)
        tpg.luns.append(new)
        return new

    def NodeACL(self, tpg, wwn, mode="any"):
        assert mode == "create"
        assert not [a for a in tpg.node_acls if a.node_wwn == wwn]
        self.change("create acl %s" % wwn)
        acl = FakeACL(self, tpg, wwn)
        tpg.node_acls.append(acl)
        return acl

    def MappedLUN(self, acl, mapped_lun, tpg_lun, write_protect=False):
        assert acl is not None
        assert not [m for m in acl.mapped_luns if m.mapped_lun == mapped_lun]
        tpg = acl._tpg
        target_lun = [x for x in tpg.luns if x.lun == tpg_lun]
        if not target_lun:
            raise RTSLibError("no tpg lun %d" % tpg_lun)
        self.change("map lun %d" % mapped_lun)
        mlun = FakeMappedLUN(self, mapped_lun, target_lun[0], write_protect)
        acl.mapped_luns.append(mlun)
        return mlun

    # Helpers for the tests -----------------------------------------------------------------
    def add_backstore(self, name, dev, size=1024, plugin="fileio", attributes=None):
        so = FakeStorageObject(self, name, dev, size, False, plugin=plugin, attributes=attributes)
        self.storage_objects.append(so)
        return so

    def add_target(self, wwn):
        target = FakeTarget(wwn)
        self.targets.append(target)
        return target

    @staticmethod
    def make_lun(number, storage_object=None):
        return FakeLUN(number, storage_object)

    def add_tpg(self, wwn, tag=1):
        target = FakeTarget(wwn)
        self.targets.append(target)
        tpg = FakeTPG(self, target, tag)
        target.tpgs.append(tpg)
        return tpg


@pytest.fixture
def lio(tmp_path, monkeypatch):
    """A fresh in-memory LIO whose dbroot and legacy dbroot are under tmp_path."""
    from ansible_collections.hakeep.ha.plugins.modules import lio_target

    dbroot = tmp_path / "etc-rtslib-fb-target"
    dbroot.mkdir()
    monkeypatch.setattr(lio_target, "LEGACY_DBROOT", str(tmp_path / "var-target"))
    return FakeLIO(str(dbroot))
