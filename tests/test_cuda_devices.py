"""CUDA's device numbers mapped to NVIDIA boards by identity, without the hardware."""

from __future__ import annotations

from joulemeter.meter.sources.cuda_devices import Board, cuda_device_count, map_devices, visible_entries

A = Board(0, "GPU-aaaa1111-0000", "00000000:B1:00.0", "NVIDIA H100 80GB HBM3")
B = Board(1, "GPU-bbbb2222-0000", "00000000:07:00.0", "NVIDIA H100 80GB HBM3",
          mig_uuids=("MIG-1111aaaa-0000", "MIG-2222bbbb-0000"))
C = Board(2, "GPU-aaaa3333-0000", "00000000:41:00.0", "NVIDIA A100-SXM4-40GB")


def _uuids(devices):
    return [(d.cuda_index, d.board.uuid, d.mig_uuid) for d in devices]


def test_two_mig_entries_give_one_cuda_device_as_cuda_enumerates_one_per_process():
    spec = "MIG-1111aaaa-0000,MIG-2222bbbb-0000"
    assert visible_entries(spec) == ["MIG-1111aaaa-0000"]
    assert cuda_device_count(spec, boards=2) == 1
    devices, _ = map_devices([A, B], spec, "PCI_BUS_ID")
    assert _uuids(devices) == [(0, B.uuid, "MIG-1111aaaa-0000")]


def test_indices_count_up_to_the_first_entry_that_names_no_board():
    assert cuda_device_count("1,0,5,1", boards=2) == 2
    assert cuda_device_count(None, boards=3) == 3
    assert cuda_device_count("0,,1", boards=2) == 1


def test_indices_are_numbered_in_pci_bus_order_whatever_nvml_index_a_board_has():
    devices, warnings = map_devices([A, B], "0,1", "PCI_BUS_ID")
    assert _uuids(devices) == [(0, B.uuid, None), (1, A.uuid, None)]
    assert warnings == []


def test_unlike_boards_without_pci_bus_order_warn_that_the_mapping_is_assumed():
    devices, warnings = map_devices([A, C], None, None)
    assert [d.board.uuid for d in devices] == [C.uuid, A.uuid]
    (warning,) = warnings
    assert "CUDA_DEVICE_ORDER=PCI_BUS_ID" in warning
    assert devices[0].matched_by == "PCI bus order, assumed"


def test_a_uuid_prefix_must_name_one_board_and_an_ambiguous_one_ends_the_list():
    devices, warnings = map_devices([A, C], "GPU-aaaa3,GPU-aaaa", "PCI_BUS_ID")
    assert _uuids(devices) == [(0, C.uuid, None)]
    assert devices[0].matched_by == "UUID prefix"
    assert "'GPU-aaaa' names no GPU" in warnings[0]


def test_torch_uuids_decide_over_any_order():
    devices, warnings = map_devices([A, B, C], "2,1", None, torch_uuids=[C.uuid[4:], "1111aaaa-0000"])
    assert _uuids(devices) == [(0, C.uuid, None), (1, B.uuid, "MIG-1111aaaa-0000")]
    assert warnings == []
