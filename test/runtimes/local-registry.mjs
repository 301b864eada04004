// A loopback npm registry for one package: serves the packed session-flock tarball under
// its own name and passes every other package's metadata through from the npm registry
// (tarball URLs there stay pointing at it). Lets Deno resolve `npm:session-flock` the way a
// user's install would, before the package is published. Prints its URL, then serves
// until killed.  Usage: node local-registry.mjs <tarball>
import { createServer } from 'node:http';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { gunzipSync } from 'node:zlib';

const upstream = (process.env.SF_UPSTREAM_REGISTRY ?? 'https://registry.npmjs.org').replace(/\/$/, '');
const tarballPath = process.argv[2];
const tarball = readFileSync(tarballPath);
const { name, version, manifest } = readManifest(tarball);

function readManifest(gz) {
  // package/package.json from the tarball, with the tar format read just far enough.
  const tar = gunzipSync(gz);
  for (let offset = 0; offset + 512 <= tar.length; ) {
    const entry = tar.subarray(offset, offset + 100).toString('utf8').replace(/\0.*$/s, '');
    const size = parseInt(tar.subarray(offset + 124, offset + 136).toString('utf8').trim() || '0', 8);
    if (entry === 'package/package.json') {
      const json = JSON.parse(tar.subarray(offset + 512, offset + 512 + size).toString('utf8'));
      return { name: json.name, version: json.version, manifest: json };
    }
    offset += 512 + Math.ceil(size / 512) * 512;
  }
  throw new Error(`${tarballPath}: no package/package.json`);
}

const server = createServer(async (req, res) => {
  const url = new URL(req.url, 'http://x');
  const self = `http://${req.headers.host}`;
  const route = decodeURIComponent(url.pathname.slice(1));
  try {
    if (route === name) {
      const file = basename(tarballPath);
      const body = {
        name,
        'dist-tags': { latest: version },
        versions: {
          [version]: {
            ...manifest,
            _id: `${name}@${version}`,
            dist: {
              tarball: `${self}/${name}/-/${file}`,
              shasum: createHash('sha1').update(tarball).digest('hex'),
              integrity: `sha512-${createHash('sha512').update(tarball).digest('base64')}`,
            },
          },
        },
      };
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    } else if (route.startsWith(`${name}/-/`)) {
      res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(tarball);
    } else {
      const response = await fetch(`${upstream}/${url.pathname.slice(1)}`, { headers: { accept: req.headers.accept ?? 'application/json' } });
      res.writeHead(response.status, { 'content-type': response.headers.get('content-type') ?? 'application/json' });
      res.end(Buffer.from(await response.arrayBuffer()));
    }
  } catch (error) {
    res.writeHead(502).end(String(error));
  }
});
server.listen(0, '127.0.0.1', () => console.log(`http://127.0.0.1:${server.address().port}/`));
