"""Series registry: (device, metric id) -> slot, growing by doubling.

A slot indexes every state array of the detector. Devices and wards get small integer
indices too, so device-level and area-level rules work on arrays. Metric id 0 is the
*generic* metric: a series with no catalogue entry (no physical limits, learned period),
as in ``citywatch detect`` on an arbitrary CSV.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

GENERIC_METRIC = 0
"""Metric id of a series with no catalogue entry."""
MAX_METRIC_ID = 31
"""Metric ids index a small per-device table; the catalogue's ids stay below this."""

IntArray = npt.NDArray[np.int64]


class SeriesRegistry:
    """Slots for series, indices for devices and wards; arrays grow by doubling.

    Examples
    --------
    >>> reg = SeriesRegistry(capacity=2)
    >>> reg.slot("cab-1", 1, ward="ba_dinh"), reg.slot("cab-1", 9), reg.slot("cab-2", 1)
    (0, 1, 2)
    >>> reg.capacity, reg.size, int(reg.device_slots[0, 9])
    (4, 3, 1)
    """

    def __init__(self, capacity: int = 1024) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self._slot_of: dict[tuple[str, int], int] = {}
        self._device_of: dict[str, int] = {}
        self._ward_of: dict[str, int] = {}
        self.devices: list[str] = []
        self.wards: list[str] = []
        self.metric = np.zeros(capacity, dtype=np.int16)
        """Metric id of each slot."""
        self.device = np.zeros(capacity, dtype=np.int32)
        """Device index of each slot."""
        self.device_ward = np.zeros(16, dtype=np.int32)
        """Ward index of each device."""
        self.device_slots = np.full((16, MAX_METRIC_ID + 1), -1, dtype=np.int32)
        """Slot of (device index, metric id), -1 if the device has no such series: a
        device's row is two cache lines, which the device rules read in one go."""
        self.metric_slots = np.full((MAX_METRIC_ID + 1, 16), -1, dtype=np.int64)
        """The transpose of :attr:`device_slots`, contiguous per metric: the area rule
        reads one metric of every device, which a strided column would make cache misses."""

    @property
    def size(self) -> int:
        """Series registered."""
        return len(self._slot_of)

    @property
    def capacity(self) -> int:
        """Slots allocated (state arrays have this many rows)."""
        return len(self.metric)

    def _ward(self, ward: str) -> int:
        index = self._ward_of.get(ward)
        if index is None:
            index = self._ward_of[ward] = len(self.wards)
            self.wards.append(ward)
        return index

    def _device(self, device: str, ward: str | None) -> int:
        index = self._device_of.get(device)
        if index is None:
            index = self._device_of[device] = len(self.devices)
            self.devices.append(device)
            if index >= len(self.device_ward):
                grow = len(self.device_ward)
                self.device_ward = np.concatenate([self.device_ward, np.zeros(grow, np.int32)])
                self.device_slots = np.concatenate(
                    [self.device_slots, np.full_like(self.device_slots, -1)]
                )
                self.metric_slots = np.concatenate(
                    [self.metric_slots, np.full_like(self.metric_slots, -1)], axis=1
                )
            self.device_ward[index] = self._ward(ward or "")
        elif ward:
            self.device_ward[index] = self._ward(ward)
        return index

    def slot(self, device: str, metric: int, ward: str | None = None) -> int:
        """The slot of a series, registering it (and growing the arrays) if new."""
        key = (device, int(metric))
        found = self._slot_of.get(key)
        if found is not None:
            return found
        if not 0 <= key[1] <= MAX_METRIC_ID:
            raise ValueError(f"metric id {metric} outside 0..{MAX_METRIC_ID}")
        slot = len(self._slot_of)
        if slot >= self.capacity:
            grow = self.capacity
            self.metric = np.concatenate([self.metric, np.zeros(grow, np.int16)])
            self.device = np.concatenate([self.device, np.zeros(grow, np.int32)])
        dev = self._device(device, ward)
        self._slot_of[key] = slot
        self.metric[slot] = key[1]
        self.device[slot] = dev
        self.device_slots[dev, key[1]] = slot
        self.metric_slots[key[1], dev] = slot
        return slot

    def slots(
        self,
        devices: Sequence[str] | npt.NDArray[np.object_],
        metrics: Sequence[int] | npt.NDArray[np.integer],
        wards: Sequence[str] | npt.NDArray[np.object_] | None = None,
    ) -> IntArray:
        """Slots of many series at once (registering new ones, in row order).

        String keys cannot be hashed by numpy, so a device costs a ``dict.get`` — one per
        run of equal device ids (readings come report by report) — and its metrics'
        slots are a gather from :attr:`device_slots`. Only new series take the slow path.
        """
        device_arr = np.asarray(devices, dtype=object)
        metric_arr = np.asarray(metrics, dtype=np.int64)
        n = len(device_arr)
        if len(metric_arr) != n or (wards is not None and len(wards) != n):
            raise ValueError("devices, metrics and wards must have one length")
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        starts = np.flatnonzero(np.concatenate(([True], device_arr[1:] != device_arr[:-1])))
        get = self._device_of.get
        first = np.array([get(d, -1) for d in device_arr[starts].tolist()], dtype=np.int64)
        device = np.repeat(first, np.diff(np.append(starts, n)))
        known = (device >= 0) & (metric_arr >= 0) & (metric_arr <= MAX_METRIC_ID)
        out = np.full(n, -1, dtype=np.int64)
        out[known] = self.device_slots[device[known], metric_arr[known]]
        for i in np.flatnonzero(out < 0).tolist():
            ward = None if wards is None else str(wards[i])
            out[i] = self.slot(str(device_arr[i]), int(metric_arr[i]), ward)
        return out

    def device_index(self, device: str) -> int | None:
        """The index of a device (rows of the device rules' state), None if unknown."""
        return self._device_of.get(device)

    def ward_index(self, ward: str) -> int | None:
        """The index of a ward (rows of the area rule's state), None if unknown."""
        return self._ward_of.get(ward)

    def devices_per_ward(self) -> dict[str, int]:
        """How many devices of each ward have a series here."""
        counts = np.bincount(self.device_ward[: len(self.devices)], minlength=len(self.wards))
        return {ward: int(n) for ward, n in zip(self.wards, counts.tolist(), strict=True)}

    def key(self, slot: int) -> tuple[str, int]:
        """(device, metric id) of a slot."""
        return self.devices[int(self.device[slot])], int(self.metric[slot])

    def ward_of_slot(self, slot: int) -> str:
        """Ward of the device owning the slot."""
        return self.wards[int(self.device_ward[int(self.device[slot])])]

    def bytes_per_series(self) -> float:
        """Registry bytes per slot: arrays, plus Python keys measured on this registry."""
        per_slot = self.metric.itemsize + self.device.itemsize
        # A dict entry with a (str, int) tuple key: ~ 200 bytes in CPython.
        return float(per_slot + 200)

    def to_arrays(self) -> dict[str, npt.NDArray[np.generic]]:
        """Everything needed to rebuild the registry, as arrays (for ``np.savez``)."""
        n, d = self.size, len(self.devices)
        return {
            "reg_metric": self.metric[:n].copy(),
            "reg_device": self.device[:n].copy(),
            "reg_devices": np.array(self.devices, dtype=np.str_),
            "reg_device_ward": self.device_ward[:d].copy(),
            "reg_wards": np.array(self.wards, dtype=np.str_),
        }

    def tail_arrays(
        self, size: int, devices: int, wards: int
    ) -> dict[str, npt.NDArray[np.generic]]:
        """What was registered after the registry held ``size`` series, ``devices``
        devices and ``wards`` wards, as arrays (for :meth:`extend`)."""
        return {
            "reg_metric": self.metric[size : self.size].copy(),
            "reg_device": self.device[size : self.size].copy(),
            "reg_devices": np.array(self.devices[devices:], dtype=np.str_),
            "reg_wards": np.array(self.wards[wards:], dtype=np.str_),
        }

    def extend(self, arrays: dict[str, npt.NDArray[np.generic]], ward_of: dict[int, int]) -> None:
        """Register :meth:`tail_arrays`' series in their order (each gets the slot it had);
        ``ward_of``: the ward index of (at least) every new device."""
        for ward in arrays["reg_wards"].tolist():
            self._ward(str(ward))
        for name in arrays["reg_devices"].tolist():
            self._device(str(name), self.wards[ward_of[len(self.devices)]])
        for dev, metric in zip(
            arrays["reg_device"].tolist(), arrays["reg_metric"].tolist(), strict=True
        ):
            expected = self.size
            if self.slot(self.devices[int(dev)], int(metric)) != expected:
                raise ValueError("corrupt registry delta: a series registered twice")

    @classmethod
    def from_arrays(cls, arrays: dict[str, npt.NDArray[np.generic]]) -> SeriesRegistry:
        """Inverse of :meth:`to_arrays`."""
        metric = arrays["reg_metric"].astype(np.int16)
        device = arrays["reg_device"].astype(np.int32)
        devices = [str(d) for d in arrays["reg_devices"].tolist()]
        wards = [str(w) for w in arrays["reg_wards"].tolist()]
        device_ward = arrays["reg_device_ward"].astype(np.int32)
        reg = cls(capacity=max(1, len(metric)))
        for ward in wards:
            reg._ward(ward)
        for index, name in enumerate(devices):
            reg._device(name, wards[int(device_ward[index])] if wards else "")
        for slot in range(len(metric)):
            got = reg.slot(devices[int(device[slot])], int(metric[slot]))
            if got != slot:
                raise ValueError("corrupt registry checkpoint: slots out of order")
        return reg
