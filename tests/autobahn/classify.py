#!/usr/bin/env python3
"""Sorts an Autobahn|Testsuite fuzzingclient report (index.json and one JSON file per case) into:

OK             the suite's verdict is OK, for the case's events and for its close.
NON-STRICT / INFORMATIONAL
               allowed by RFC 6455 (e.g. invalid UTF-8 found at the end of a message rather
               than at the first bad byte), or behaviour the RFC leaves open.
NO-ECHO        the only fault is that the expected echo never came: the server is a JSON
               protocol server and answers a message with a JSON reply (an error for the
               suite's payloads), never with the message itself. Counted only when every other
               expected event (the pongs) came in order, every message received is one of the
               server's JSON text replies, and the connection ended by the fuzzer's own close:
               either a close the suite judged OK, or its 1001 after `killAfter` (waiting for
               the echo), answered with 1001 in a clean close handshake, in a case where the
               suite was to close anyway. In the 9.*, 12.* and 13.* cases (no events
               recorded) the suite's result must say that a text message came instead of
               the echo.
VIOLATION      anything else.

Prints every violation with its case ID and the suite's reasons, counts per category, and a
last line "N passed, N failed" (failed = violations). Exits 1 on any violation.

    classify.py REPORT_DIR [--agent NAME] [--excluded '["12.*", "13.*"]']
"""
import argparse
import json
import os
import re
import sys


# What the 9.*, 12.* and 13.* cases say when a text message came instead of the echo (their
# wording, from autobahntestsuite/case/case9_*.py and case12_*.py; 9.4.* says "got binary"
# where it means text).
TEXT_INSTEAD_OF_ECHO = [
    r"^Expected text message with payload of length \d+, but got \d+\.$",
    r"^Expected binary message with payload, but got text\.$",
    r"^Expected binary message with payload, but got binary\.$",
    r"^Echo'ed message type or length differs from what I sent \(got binary = False, ",
    # 12.* and 13.* (permessage-deflate): the reply, inflated when it came compressed.
    r"^Echo'ed message length differs from what I sent \(got length \d+, expected length \d+\)\.$",
    r"^Echo'ed message type differs from what I sent \(got binary False, expected binary True\)\.$",
]


def case_key(case_id):
    return [int(part) for part in case_id.split(".")]


def is_json_reply(event):
    """A message event the server sent: a text frame holding one of its JSON replies (the
    report truncates long payloads, so only the start is looked at)."""
    kind, payload, binary = event[0], event[1], event[2] if len(event) > 2 else False
    return kind == "message" and not binary and payload.startswith('{"command":')


def without_messages(events):
    return [event for event in events if event[0] != "message"]


def only_fault_is_no_echo(case):
    if case["behavior"] != "FAILED":
        return False
    expected = case["expected"]
    received = case["received"]
    if expected:
        # Some outcome the suite accepts must expect a message (an echo), and match what came
        # once messages are set aside on both sides.
        alternatives = [events for events in expected.values() if events is not None]
        if not any(
            any(event[0] == "message" for event in events)
            and without_messages(events) == without_messages(received)
            for events in alternatives
        ):
            return False
        if not all(is_json_reply(event) for event in received if event[0] == "message"):
            return False
    else:
        # 9.*, 12.*, 13.*: the suite records no events and checks each echo itself; its result
        # says what came instead. Only a text message (the JSON reply) counts: no answer at all is not
        # the server's way, and is left a violation.
        if not any(re.match(pattern, case["result"]) for pattern in TEXT_INSTEAD_OF_ECHO):
            return False
    if case["behaviorClose"] in ("OK", "INFORMATIONAL"):
        return True
    # The suite gave up waiting for the echo and closed with 1001 itself; the server answered.
    # Only where the suite was to close in any case: a server that should have failed the
    # connection and did not is a violation.
    return (
        case["behaviorClose"] == "WRONG CODE"
        and case["expectedClose"]["closedByMe"]
        and case["closedByMe"]
        and case["localCloseCode"] == 1001
        and case["remoteCloseCode"] == 1001
        and case["wasClean"]
    )


def classify(case):
    behavior, close = case["behavior"], case["behaviorClose"]
    if behavior == "OK" and close == "OK":
        return "OK"
    lenient = ("OK", "NON-STRICT", "INFORMATIONAL")
    if behavior in lenient and close in lenient:
        return "NON-STRICT/INFORMATIONAL"
    if only_fault_is_no_echo(case):
        return "NO-ECHO"
    return "VIOLATION"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("report")
    parser.add_argument("--agent", default="sessionserver")
    parser.add_argument("--excluded", default="[]")
    args = parser.parse_args()
    with open(os.path.join(args.report, "index.json")) as f:
        index = json.load(f)
    if args.agent not in index:
        print("autobahn: no results for agent %r in %s" % (args.agent, args.report))
        print("0 passed, 1 failed")
        return 1
    cases = index[args.agent]
    categories = {}
    violations = []
    for case_id in sorted(cases, key=case_key):
        with open(os.path.join(args.report, cases[case_id]["reportfile"])) as f:
            case = json.load(f)
        category = classify(case)
        categories.setdefault(category, []).append(case_id)
        if category == "VIOLATION":
            violations.append(case)
    for case in violations:
        print(
            "VIOLATION %s: %s / close %s (server's close code %s)\n    %s\n    events: %s\n    close: %s"
            % (
                case["id"],
                case["behavior"],
                case["behaviorClose"],
                case["remoteCloseCode"],
                case["description"].strip().replace("\n", " ")[:200],
                case["result"],
                case["resultClose"],
            )
        )
    print()
    for category in ("OK", "NON-STRICT/INFORMATIONAL", "NO-ECHO", "VIOLATION"):
        ids = categories.get(category, [])
        print("%-26s %4d" % (category, len(ids)))
    excluded = json.loads(args.excluded)
    if excluded:
        print(
            "%-26s %s (permessage-deflate: not negotiated by the server)"
            % ("excluded/unimplemented", ", ".join(excluded))
        )
    failed = len(categories.get("VIOLATION", []))
    print("%d passed, %d failed" % (len(cases) - failed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
