// Uploads a file to a phix coordinator upload URL with tus-js-client,
// aborting after the first chunk and resuming from the server's offset.
// Usage: node tus_upload.js <uploadURL> <hospital> <certFP> <file>
'use strict';
const fs = require('fs');
const tus = require('tus-js-client');

const [url, hospital, cert, file] = process.argv.slice(2);
const data = fs.readFileSync(file);
const headers = { 'X-Test-Hospital': hospital, 'X-Test-Cert': cert };
const chunkSize = 64 * 1024;

function run(opts) {
  return new Promise((resolve, reject) => {
    const up = new tus.Upload(data, Object.assign({
      headers, chunkSize, retryDelays: [0, 100, 300],
      onError: reject,
      onSuccess: () => resolve(up),
    }, opts));
    if (opts.abortAfterFirst) {
      up.options.onChunkComplete = (_, sent) => {
        up.abort().then(() => resolve({ aborted: sent }));
      };
    }
    up.start();
  });
}

(async () => {
  // First session: creation POST to the pre-declared URL, one chunk, abort.
  const first = await run({ endpoint: url, abortAfterFirst: true });
  // Second session: resume from the upload URL (HEAD, then PATCH from the offset).
  await run({ uploadUrl: url });
  process.stdout.write(JSON.stringify({ firstSent: first.aborted }) + '\n');
})().catch((e) => {
  process.stderr.write(String(e && e.message ? e.message.split('\n')[0] : e) + '\n');
  process.exit(1);
});
