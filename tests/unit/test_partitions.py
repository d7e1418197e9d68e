"""The partition of a ward: crc32 for the catalogue's wards (a public contract), one
designated partition for every other ward and for topics naming none."""

import zlib

from citywatch import partitions


def test_catalogue_wards_keep_crc32_mod_n() -> None:
    wards = sorted(partitions.catalogue())
    assert "phuong_hoan_kiem" in wards
    for n in (1, 5, 8, 64):
        for ward in wards:
            assert partitions.partition_of(ward, n) == zlib.crc32(ward.encode()) % n
        mapping = partitions.partition_map(wards, n)
        assert sorted(w for members in mapping.values() for w in members) == wards
        assert all(partitions.partition_of(w, n) == p for p, ms in mapping.items() for w in ms)


def test_wards_outside_the_catalogue_go_to_the_designated_partition() -> None:
    for n in (1, 5, 8):
        assert partitions.partition_of("xa_ngoai_danh_muc", n) == partitions.UNKNOWN_WARD_PARTITION
    # An explicit catalogue decides, not the shipped one.
    assert partitions.partition_of("phuong_hoan_kiem", 8, {"w_a"}) == 0
    assert partitions.partition_of("w_a", 8, {"w_a"}) == zlib.crc32(b"w_a") % 8


def test_partition_of_a_routing_key() -> None:
    wards = partitions.catalogue()
    key = "cw.v1.phuong_hoan_kiem.cabinet.cab-000001.telemetry"
    assert partitions.partition_of_key(key, 8, wards) == partitions.partition_of(
        "phuong_hoan_kiem", 8
    )
    assert partitions.partition_of_key("cw.v1.elsewhere.cabinet.c.telemetry", 8, wards) == 0
    assert partitions.partition_of_key("cw.v1", 8, wards) == 0
