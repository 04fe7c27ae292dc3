"""schemathesis hooks for scripts/schemathesis.sh: give generated requests what a real client has.

Random OTPs, PINs and device ids are refused before any interesting code runs (403, 404, 422), so
without help schemathesis exercises only the refusals of `verify`, `PUT /user/pin`,
`POST /user/devices/totp` and `DELETE /user`. For most *positive* cases (schema-valid data) this
hook puts in a fresh account OTP (from `POST /user/otp` with the test user's password), a PIN that
meets the PIN policy, a UUID device id, or the real password, so every operation reaches its
success path; the rest keep schemathesis's own values, so the refusals stay fuzzed as well.
Negative cases (deliberately invalid data) are left alone.

After a successful `DELETE /user` the user's password and PIN are set again (operator CLI), so the
next cases find the user as before.
"""

import json
import os
import random
import re
import subprocess
import urllib.error
import urllib.request
import uuid

import schemathesis
from schemathesis import GenerationMode

BASE = os.environ["OTPD_ST_BASE"]
TOKEN = os.environ["OTPD_ST_TOKEN"]
SUB = os.environ["OTPD_ST_SUB"]
PASSWORD = os.environ["OTPD_ST_PASSWORD"]
PIN = os.environ["OTPD_ST_PIN"]
OTPD = os.environ["OTPD_ST_BIN"]
# A user with a UUID `sub` and a password: what `PUT /sessions/{sessionId}` needs as `userId`.
SESSION_USER = os.environ["OTPD_ST_SESSION_USER"]
# PINs the PACE policy accepts (PACE-CLIENTS.md).
GOOD_PINS = ["1235", "9875", "1012", "1123", "4378"]
# Share of positive cases given real values; the others fuzz the refusals.
REAL_SHARE = 0.7

rng = random.Random(os.environ.get("OTPD_ST_SEED", "otpd"))


def _real() -> bool:
    return rng.random() < REAL_SHARE


def _positive(case) -> bool:
    meta = getattr(case, "meta", None)
    if meta is None:
        return True  # explicit examples
    return meta.generation.mode == GenerationMode.POSITIVE


def fresh_otp() -> str:
    request = urllib.request.Request(
        BASE + "/user/otp",
        data=json.dumps({"password": PASSWORD}).encode(),
        method="POST",
        headers={"Authorization": "Bearer " + TOKEN, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["otp"]


def new_device() -> str:
    """A device TOTP of the test user, for the admin API's revocation to find."""
    device = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    body = {"data": {"type": "deviceTOTP", "id": device, "attributes": {"otp": fresh_otp()}}}
    request = urllib.request.Request(
        BASE + "/user/devices/totp",
        data=json.dumps(body).encode(),
        method="POST",
        headers={
            "Authorization": "Bearer " + TOKEN,
            "Content-Type": "application/vnd.api+json",
            "Accept": "application/vnd.api+json",
        },
    )
    with urllib.request.urlopen(request, timeout=10):
        return device


def new_session(session_id: str) -> None:
    """Creates a login session of SESSION_USER, so a case that passes it finds it."""
    request = urllib.request.Request(
        BASE + "/sessions/" + session_id,
        data=json.dumps({"userId": SESSION_USER, "passedLoginOTP": False}).encode(),
        method="PUT",
        headers={"Authorization": "Bearer " + TOKEN, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10):
        pass


def phone_number() -> str:
    """A valid German mobile number (libphonenumber's rules), new each time."""
    return "+49 151 " + "".join(str(rng.randrange(10)) for _ in range(8))


def phone_code() -> str:
    """Puts a new number and reads its code from the SMS that development mode prints into the
    server's log (OTPD_ST_SERVER_LOG)."""
    body = {"data": {"type": "phone", "attributes": {"phoneNumber": phone_number()}}}
    request = urllib.request.Request(
        BASE + "/user/phone",
        data=json.dumps(body).encode(),
        method="PUT",
        headers={
            "Authorization": "Bearer " + TOKEN,
            "Content-Type": "application/vnd.api+json",
            "Accept": "application/vnd.api+json",
        },
    )
    with urllib.request.urlopen(request, timeout=10):
        pass
    with open(os.environ["OTPD_ST_SERVER_LOG"], encoding="utf-8", errors="replace") as log:
        codes = re.findall(r"(\d{6}) is your", log.read())
    return codes[-1]


def restore_user() -> None:
    for command, secret in (("set-password", PASSWORD), ("set-pin", PIN)):
        subprocess.run(
            [OTPD, "--dev", "user", command, SUB],
            input=secret.encode(),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


def _attributes(body):
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        return None, None
    attributes = data.get("attributes")
    if not isinstance(attributes, dict):
        attributes = {}
        data["attributes"] = attributes
    return data, attributes


@schemathesis.hook
def before_call(ctx, case, kwargs):
    if not _positive(case):
        return
    method, path = case.operation.method.upper(), case.operation.path
    body = case.body
    if (method, path) == ("POST", "/user/otp") and isinstance(body, dict):
        # Always the real password: wrong ones are 422 by design, and a mostly refused operation
        # is a schemathesis warning. Wrong values still come in the negative cases and in the
        # integration tests.
        body["password"] = PASSWORD
        return
    if not _real():
        return
    if (method, path) == ("POST", "/user/otp/verify") and isinstance(body, dict):
        body["otp"] = fresh_otp()
        if isinstance(body.get("types"), list) and "account" not in body["types"]:
            body["types"].append("account")
    elif (method, path) == ("PUT", "/user/pin"):
        data, attributes = _attributes(body)
        if attributes is not None:
            attributes["pin"] = rng.choice(GOOD_PINS)
            attributes["otp"] = fresh_otp()
    elif (method, path) == ("POST", "/user/devices/totp"):
        data, attributes = _attributes(body)
        if data is not None:
            data["id"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            attributes.clear()
            attributes["otp"] = fresh_otp()
    elif (method, path) == ("PUT", "/user/phone"):
        data, attributes = _attributes(body)
        if attributes is not None:
            attributes["phoneNumber"] = phone_number()
    elif (method, path) == ("PUT", "/user/phone/verify") and isinstance(body, dict):
        body["code"] = phone_code()
    elif (method, path) == ("DELETE", "/user") and isinstance(body, dict):
        body["otp"] = fresh_otp()
    elif (method, path) == ("POST", "/callbacks/password-reset") and isinstance(body, dict):
        # The prove of a password reset: the user's real PIN, so the PIN is kept.
        body["pin"] = PIN
        body.pop("skip", None)
    elif (method, path) == ("PUT", "/sessions/{sessionId}") and isinstance(body, dict):
        # A user otpd knows and a session id not used before: created (200), or, when the case
        # passes it, created first and then passed (204).
        body["userId"] = SESSION_USER
        session_id = "st-" + uuid.UUID(int=rng.getrandbits(128), version=4).hex
        case.path_parameters["sessionId"] = session_id
        if body.get("passedLoginOTP") is True:
            new_session(session_id)
    elif path.startswith("/admin/v1/users/{sub}"):
        # The admin API acts on users that exist: the test user, with a device to revoke.
        case.path_parameters["sub"] = SUB
        if path.endswith("/devices/{id}"):
            case.path_parameters["id"] = new_device()


@schemathesis.hook
def after_call(ctx, case, response):
    method, path = case.operation.method.upper(), case.operation.path
    if method == "DELETE" and path == "/user" and response.status_code == 202:
        restore_user()
    if method == "DELETE" and path == "/admin/v1/users/{sub}" and response.status_code == 204:
        restore_user()
    # A skipped or failed prove erases the PIN (410): give it back for the cases that follow.
    if path == "/callbacks/password-reset" and response.status_code == 410:
        restore_user()
