"""Vocabulary of the synthetic fault tickets: root causes, alarms, KPIs, notes, resolutions.

Kept apart from :mod:`nrg.tickets.generator` so the generator's logic stays short and the
data a reader may want to extend (a new root cause, another alarm) sits in one
place. Every root cause has its own alarms, abnormal KPI ranges, equipment,
NOC notes and resolution templates; overlaps between classes (LOS from a fibre
cut *and* from a power failure) are deliberate, because real tickets overlap.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RootCause:
    """One class of the root-cause task, with the material its tickets are drawn from."""

    label: str
    description: str
    alarms: tuple[str, ...]
    kpis: tuple[str, ...]              # names of KPIs pushed into an abnormal range
    equipment: tuple[str, ...]         # kinds of equipment named in the ticket
    notes: tuple[str, ...]             # NOC engineer free text
    actions: tuple[str, ...]           # what the engineer did (reference response)
    causes: tuple[str, ...]            # the root-cause sentence of the response


# KPI name -> (unit, normal range, abnormal range); abnormal is what a fault pushes it to.
KPIS: dict[str, tuple[str, tuple[float, float], tuple[float, float]]] = {
    "packet loss": ("%", (0.0, 0.3), (5.0, 60.0)),
    "RSRP": ("dBm", (-95.0, -75.0), (-125.0, -110.0)),
    "SINR": ("dB", (12.0, 25.0), (-5.0, 3.0)),
    "PRB utilisation": ("%", (20.0, 65.0), (92.0, 100.0)),
    "latency": ("ms", (8.0, 25.0), (120.0, 900.0)),
    "BER": ("", (1e-12, 1e-10), (1e-6, 1e-3)),
    "CPU load": ("%", (10.0, 45.0), (90.0, 100.0)),
    "battery voltage": ("V", (52.0, 54.5), (42.0, 47.5)),
}

EQUIPMENT_KINDS = ("enodeb", "gnodeb", "router", "olt", "dwdm", "microwave", "rectifier")

ROOT_CAUSES: tuple[RootCause, ...] = (
    RootCause(
        "fibre_cut", "Physical break of an optical fibre (civil works, rodents, cable theft).",
        ("LOS", "LOF", "AIS", "S1 link down", "OTU LOS on line port", "PON LOS on multiple ONTs"),
        ("packet loss", "BER"), ("dwdm", "olt", "router"),
        ("several sites behind the same duct lost service at the same time",
         "OTDR shows an event at about {km} km from the exchange",
         "civil works reported near the route this morning",
         "both directions down, no light received on the span"),
        ("dispatched the field team, located the break with OTDR and spliced the fibre",
         "rerouted traffic to the protection path, then repaired the cable and restored the main path"),
        ("fibre cut on the span at {km} km from the exchange",
         "damaged optical cable in the access duct"),
    ),
    RootCause(
        "power_failure", "Loss of mains or DC power at a site; batteries drain, then equipment drops.",
        ("mains failure", "rectifier fail", "battery low", "Cell Out of Service", "site down", "LOS"),
        ("battery voltage",), ("rectifier", "enodeb", "gnodeb"),
        ("site on batteries since {hh}:{mm}, generator not started",
         "utility confirms an outage in the area",
         "all cells of the site dropped together, no transmission alarm before",
         "door alarm and temperature high reported before the site went down"),
        ("dispatched a portable generator and restored power; cells recovered",
         "reset the tripped breaker on the rectifier shelf and replaced a failed rectifier module"),
        ("mains power failure at the site and batteries exhausted",
         "tripped DC breaker on the rectifier shelf"),
    ),
    RootCause(
        "hardware_fault", "A failed board, SFP, fan, radio unit or power module.",
        ("card failure", "SFP Tx fault", "fan fail", "RRU hardware fault", "board temperature high", "LOS"),
        ("packet loss", "BER"), ("router", "dwdm", "enodeb", "gnodeb", "olt"),
        ("optical Tx power of the SFP reads -40 dBm, other ports fine",
         "board keeps rebooting, hardware error logged in the inventory",
         "only one sector affected, RRU reports VSWR and hardware alarm",
         "fan tray alarm followed by temperature rise on the line card"),
        ("replaced the faulty SFP and confirmed Rx/Tx power within range",
         "swapped the line card under RMA; traffic restored after commissioning"),
        ("faulty SFP transceiver on the uplink port",
         "failed line card (hardware), confirmed by vendor diagnostics"),
    ),
    RootCause(
        "software_defect", "A bug in the network element software: crash, memory leak, stuck process.",
        ("process restart", "memory usage high", "Cell Out of Service", "watchdog reset", "S1 link down"),
        ("CPU load", "latency"), ("enodeb", "gnodeb", "router", "olt"),
        ("unit restarted twice after last night's software upgrade",
         "memory grows steadily until the process crashes, matches vendor bug",
         "same release on other sites shows the same reset pattern",
         "core dump collected, no hardware alarm"),
        ("applied the vendor patch and restarted the affected process; no recurrence",
         "rolled back to the previous software release; KPIs back to normal"),
        ("software defect in the new release (vendor bug, memory leak)",
         "known vendor bug causing a process crash"),
    ),
    RootCause(
        "misconfiguration", "A wrong parameter after a change: VLAN, routing, neighbour list, PCI.",
        ("BGP neighbour down", "OSPF adjacency lost", "VLAN mismatch", "S1 link down", "X2 link down"),
        ("packet loss", "latency"), ("router", "enodeb", "gnodeb", "olt"),
        ("started right after change CHG-{chg} in the maintenance window",
         "interface up/up but no traffic, VLAN tag differs from the design",
         "MTU mismatch between the two ends of the link",
         "neighbour relation missing after the planning tool export"),
        ("corrected the VLAN/MTU configuration as per the design and verified the traffic",
         "rolled back change CHG-{chg}; service restored"),
        ("wrong configuration introduced by change CHG-{chg}",
         "VLAN/MTU mismatch configured on the interface"),
    ),
    RootCause(
        "congestion", "Demand exceeds capacity: busy cells, saturated links, event traffic.",
        ("PRB utilisation high", "RRC setup failure rate high", "link utilisation above threshold",
         "queue drops"),
        ("PRB utilisation", "latency", "packet loss"), ("enodeb", "gnodeb", "router"),
        ("happens every evening at busy hour, no alarm outside peak",
         "stadium event nearby, traffic three times the usual",
         "uplink port running at 98 % for hours",
         "customers complain of slow data, not of drops"),
        ("added carrier capacity and rebalanced load to neighbour cells",
         "upgraded the backhaul link capacity and adjusted QoS queues"),
        ("congestion: traffic demand above cell/link capacity at busy hour",
         "saturated uplink port during a traffic peak"),
    ),
    RootCause(
        "radio_interference", "External or internal interference on the radio band.",
        ("uplink interference high", "RSSI high", "SINR degradation", "call drop rate high"),
        ("SINR", "RSRP"), ("enodeb", "gnodeb"),
        ("uplink noise floor raised by 12 dB on all PRBs of the band",
         "spectrum scan shows a wideband signal near the site",
         "a neighbour's illegal repeater suspected",
         "only one band affected, the other carriers are clean"),
        ("located and switched off the interfering repeater with the regulator",
         "retuned the affected carrier and adjusted antenna tilt; SINR back to normal"),
        ("external radio interference (illegal repeater) on the uplink band",
         "intermodulation interference in the antenna system"),
    ),
    RootCause(
        "transmission_backhaul", "Degradation of the microwave/IP backhaul between site and core.",
        ("BER-SD", "BER-EXC", "microwave link degraded", "AIS", "S1 link down", "RSL low"),
        ("BER", "latency", "packet loss"), ("microwave", "router"),
        ("microwave received level fades during the rain",
         "errors on the backhaul, radio side of the site is clean",
         "adaptive modulation falls back to QPSK",
         "far-end router logs CRC errors on the uplink"),
        ("realigned the microwave antenna and replaced the ODU; errors cleared",
         "moved the site to an alternative backhaul path and opened a case with the carrier"),
        ("degraded microwave backhaul link (misaligned antenna / fading)",
         "errors on the leased backhaul line from the carrier"),
    ),
)

FIELD_DOCS: tuple[tuple[str, str], ...] = (
    ("ticket_id", "operator ticket number (TT-nnnnnn)"),
    ("created_at", "UTC timestamp the NOC opened the ticket"),
    ("severity", "Critical / Major / Minor"),
    ("site", "site identifier: eNodeB/gNodeB ID, router hostname, OLT/ONT, DWDM shelf/slot/port"),
    ("alarms", "active alarms reported by the element manager"),
    ("kpis", "KPI readings: packet loss %, RSRP dBm, SINR dB, PRB utilisation %, latency ms, BER, ..."),
    ("notes", "free text from the NOC engineer"),
    ("label", "root cause (the class to predict)"),
    ("response", "reference resolution an engineer would write (the text to generate)"),
)
