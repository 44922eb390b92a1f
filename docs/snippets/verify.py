# Verify a ramphook webhook in Python: the headers with the Standard Webhooks
# library (pip install standardwebhooks), the body signature with hmac.
# raw_body: the request body exactly as received (bytes or str); headers: a
# dict of the request headers; secret: the endpoint secret.
import base64
import hashlib
import hmac
import json

from standardwebhooks.webhooks import Webhook


def verify_ramphook_webhook(secret: str, raw_body, headers: dict) -> dict:
    body = raw_body.decode("utf-8") if isinstance(raw_body, bytes) else raw_body
    headers = {name.lower(): value for name, value in headers.items()}

    # 1 and 2. Timestamp (5 minutes) and header signature; raises if invalid.
    whsec = "whsec_" + base64.b64encode(secret.encode("utf-8")).decode("ascii")
    Webhook(whsec).verify(body, headers)

    # 3. The body signature: HMAC of the other three fields, printed as
    # JavaScript's JSON.stringify does (no spaces, non-ASCII kept as is).
    payload = json.loads(body)
    signature = payload.pop("signature")
    signed = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    expected = hmac.new(secret.encode("utf-8"), signed.encode("utf-8"), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise ValueError("bad body signature")
    return payload  # eventName, orderId, timeStamp: deduplicate on webhook-id
