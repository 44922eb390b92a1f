// Verify a ramphook webhook in Node.js, with nothing but the standard library.
// rawBody: the request body exactly as received (a Buffer or string, never a
// re-serialised parse); headers: an object with lower-case names, as Node's
// http module and Express give them; secret: the endpoint secret.
const crypto = require('crypto');

function sameText(a, b) {
  const x = Buffer.from(String(a)), y = Buffer.from(String(b));
  return x.length === y.length && crypto.timingSafeEqual(x, y);
}

function verifyRamphookWebhook(secret, rawBody, headers, toleranceSeconds = 300) {
  const body = Buffer.isBuffer(rawBody) ? rawBody.toString('utf8') : rawBody;
  const id = headers['webhook-id'];
  const timestamp = headers['webhook-timestamp'];
  const signatures = headers['webhook-signature'];
  if (!id || !timestamp || !signatures) throw new Error('missing webhook headers');

  // 1. The timestamp: refuse replays of old requests.
  const age = Math.floor(Date.now() / 1000) - Number(timestamp);
  if (!Number.isInteger(Number(timestamp)) || Math.abs(age) > toleranceSeconds) {
    throw new Error('stale or future timestamp');
  }

  // 2. The headers (Standard Webhooks): HMAC of "<id>.<timestamp>.<body>".
  const expected = 'v1,' + crypto.createHmac('sha256', secret)
    .update(`${id}.${timestamp}.${body}`).digest('base64');
  if (!signatures.split(' ').some((candidate) => sameText(candidate, expected))) {
    throw new Error('bad header signature');
  }

  // 3. The body signature: HMAC of JSON.stringify of the other three fields.
  const { signature, ...payload } = JSON.parse(body);
  const bodySignature = crypto.createHmac('sha256', secret)
    .update(JSON.stringify(payload)).digest('hex');
  if (!sameText(bodySignature, signature)) throw new Error('bad body signature');

  return payload; // { eventName, orderId, timeStamp }: deduplicate on headers['webhook-id']
}

module.exports = { verifyRamphookWebhook };
