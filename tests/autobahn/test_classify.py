"""Checks classify.py's sorting on cases shaped like the suite's reports (python3 -m unittest)."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from classify import classify  # noqa: E402

REPLY = '{"command":"error","error":9,"message":"the frame is not valid J ...'


def case(**fields):
    base = {
        "behavior": "FAILED",
        "behaviorClose": "WRONG CODE",
        "expected": {"OK": [["message", "Hello", False]]},
        "expectedClose": {"closeCode": [1000], "closedByMe": True, "requireClean": True},
        "received": [["message", REPLY, False]],
        "result": "Actual events differ from any expected.",
        "closedByMe": True,
        "localCloseCode": 1001,
        "remoteCloseCode": 1001,
        "wasClean": True,
    }
    base.update(fields)
    return base


class Classify(unittest.TestCase):
    def test_the_suites_verdicts(self):
        self.assertEqual(classify(case(behavior="OK", behaviorClose="OK")), "OK")
        self.assertEqual(
            classify(case(behavior="NON-STRICT", behaviorClose="OK")), "NON-STRICT/INFORMATIONAL"
        )
        self.assertEqual(classify(case(behavior="OK", behaviorClose="FAILED")), "VIOLATION")
        self.assertEqual(classify(case(behavior="UNIMPLEMENTED")), "VIOLATION")

    def test_a_json_reply_instead_of_the_echo_then_the_fuzzers_1001(self):
        self.assertEqual(classify(case()), "NO-ECHO")
        self.assertEqual(classify(case(behaviorClose="OK", remoteCloseCode=1000)), "NO-ECHO")

    def test_anything_else_that_went_wrong_is_a_violation(self):
        pong = {"OK": [["pong", "p"], ["message", "Hello", False]]}
        checks = {
            "binary reply": case(received=[["message", "0xff", True]]),
            "garbled echo": case(received=[["message", "Hell", False]]),
            "missing pong": case(expected=pong),
            "server closed with 1002": case(remoteCloseCode=1002),
            "unclean": case(wasClean=False),
            "server should have failed the connection": case(
                expectedClose={"closeCode": [1002], "closedByMe": False, "requireClean": False}
            ),
            "no echo expected": case(expected={"OK": []}, received=[]),
        }
        for name, checked in checks.items():
            self.assertEqual(classify(checked), "VIOLATION", name)
        self.assertEqual(classify(case(expected=pong, received=[["pong", "p"]] + case()["received"])), "NO-ECHO")

    def test_the_9_cases_by_their_result(self):
        nine = dict(expected={}, received=[], behaviorClose="OK", remoteCloseCode=1000)
        for result in [
            "Expected text message with payload of length 65536, but got 104.",
            "Expected binary message with payload, but got text.",
            "Echo'ed message type or length differs from what I sent (got binary = False, payload length = 115).",
            # 12.*, 13.* (permessage-deflate)
            "Echo'ed message length differs from what I sent (got length 117, expected length 16).",
            "Echo'ed message type differs from what I sent (got binary False, expected binary True).",
        ]:
            self.assertEqual(classify(case(result=result, **nine)), "NO-ECHO", result)
        for result in [
            "Did not receive message within 100 seconds.",
            "Expected text message with payload, but got binary.",
            "Echo'ed message type or length differs from what I sent (got binary = True, payload length = 4).",
            "Echo'ed message type differs from what I sent (got binary True, expected binary False).",
        ]:
            self.assertEqual(classify(case(result=result, **nine)), "VIOLATION", result)


if __name__ == "__main__":
    unittest.main()
