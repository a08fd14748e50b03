// TEST-ONLY authorization server for the interop tests: node-oidc-provider (the engine inside
// Logto) configured the way Logto configures it for machine-to-machine apps
// (logto-io/logto packages/core/src/oidc/init.ts and resource.ts). Never deploy this.
//
// Usage: INTEROP_PORT=<port> INTEROP_ADMIN_TOKEN=<random> node provider.mjs
//   issuer     http://127.0.0.1:<port>/oidc  (discovery, /jwks, /token below it, as in Logto)
//   test admin POST /__test__/keys[?publish=false|?retire=true]  sign with a brand-new P-384 key
//              GET  /__test__/stats  request counts and the last grant's parameters
//              both need "Authorization: Bearer <INTEROP_ADMIN_TOKEN>".
//
// Compared with the responses recorded from a real Logto server (tests/logto_captures/), access
// tokens have the same shape: header {alg: ES384, typ: at+jwt, kid: RFC 7638 thumbprint}, claims
// exactly jti sub iat exp scope client_id iss aud in that order (no nbf; scope absent when nothing
// is granted; sub = client_id = the app id; aud = the resource indicator as sent). Token-endpoint
// errors for a wrong secret, an unknown resource, no client authentication, an unsupported grant
// and two authentication methods at once carry the same status, error and error_description.
// Differences:
// - error bodies are stock {error, error_description}; Logto's error middleware adds "code"
//   (e.g. "oidc.invalid_target") and "message";
// - Logto replaces the client_credentials grant handler with its own; without `resource` it answers
//   invalid_target "both `resource` and `organization_id` are not provided", whereas stock
//   oidc-provider issues an opaque (non-JWT) token when only `scope` is sent, and answers
//   invalid_target "resource indicator must be an absolute URI" when neither is;
// - an unknown client id gets 401 "client authentication failed" (Logto: 400 "invalid client <id>");
// - jti is 43 characters here, 21 in Logto's tokens;
// - discovery lists only what this configuration enables (Logto adds its own scopes and claims).
// As in Logto, client_secret_post is accepted as well as client_secret_basic.
// oidc-provider 9 prints "Unsupported runtime" on Node.js 20; it works there, and is tested there.

import { createHash, generateKeyPairSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

import Provider, { errors } from 'oidc-provider';

const MOUNT = '/oidc';
const port = Number.parseInt(process.env.INTEROP_PORT ?? '', 10);
const adminToken = process.env.INTEROP_ADMIN_TOKEN ?? '';
if (!Number.isInteger(port) || port <= 0 || port > 65535 || adminToken.length < 16) {
  console.error('provider.mjs: set INTEROP_PORT (1-65535) and INTEROP_ADMIN_TOKEN (16+ characters)');
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}${MOUNT}`;
const tenant = JSON.parse(readFileSync(new URL('./tenant.json', import.meta.url), 'utf8'));

const clients = Object.entries(tenant.applications).map(([clientId, app]) => ({
  client_id: clientId,
  client_secret: app.secret,
  grant_types: ['client_credentials'],
  response_types: [],
  redirect_uris: [],
  token_endpoint_auth_method: 'client_secret_basic',
}));

// Logto grants a scope only if the resource defines it AND one of the app's M2M roles holds it
// (findApplicationScopesForResourceIndicator); oidc-provider then drops every requested scope
// that is not in the returned list, silently, as Logto does.
function grantedScopes(indicator, clientId) {
  const defined = new Set(tenant.resources[indicator].scopes);
  const held = tenant.applications[clientId]?.roles?.[indicator] ?? [];
  return held.filter((scope) => defined.has(scope));
}

function newSigningKey() {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const jwk = privateKey.export({ format: 'jwk' });
  // RFC 7638 thumbprint, the kid oidc-provider (and so Logto) derives for a key without one.
  const members = JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y });
  const kid = createHash('sha256').update(members).digest('base64url');
  return { ...jwk, kid, alg: 'ES384', use: 'sig' };
}

// Signing uses the first ES384 key of the set, so a new key goes first and older ones stay
// published behind it, as after a Logto key rotation.
function buildProvider(keys) {
  const provider = new Provider(issuer, {
    clients,
    jwks: { keys },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    // Logto signs everything with its one key type (ES384 for the seeded P-384 key).
    clientDefaults: { id_token_signed_response_alg: 'ES384' },
    enabledJWA: { idTokenSigningAlgValues: ['ES384'] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // Logto: the tenant's default API resource, '' when none is marked default.
        defaultResource: () => '',
        useGrantedResource: () => false,
        getResourceServerInfo: (ctx, indicator, client) => {
          const resource = tenant.resources[indicator];
          if (!resource) {
            throw new errors.InvalidTarget();
          }
          return {
            scope: grantedScopes(indicator, client?.clientId).join(' '),
            accessTokenFormat: 'jwt',
            accessTokenTTL: resource.accessTokenTtl,
            jwt: { sign: { alg: 'ES384' } },
          };
        },
      },
    },
    ttl: {
      ClientCredentials: (ctx, token) => token.resourceServer?.accessTokenTTL ?? 3600,
    },
  });
  provider.on('server_error', (ctx, error) => console.error('server_error:', error.message));
  // What the last successful token request carried, so a test can check what a client sent
  // (credentials never leave this process; only how they were presented).
  provider.on('grant.success', (ctx) => {
    const { params } = ctx.oidc;
    state.lastGrant = {
      client_id: ctx.oidc.client?.clientId ?? null,
      client_auth: ctx.headers.authorization?.startsWith('Basic ') ? 'client_secret_basic' : 'other',
      grant_type: params.grant_type ?? null,
      resource: params.resource ?? null,
      scope: params.scope ?? null,
    };
  });
  return provider;
}

const state = { published: [newSigningKey()], jwksRequests: 0, tokenRequests: 0, lastGrant: null };
state.tokenHandler = buildProvider(state.published).callback();
state.jwksHandler = state.tokenHandler;

// A key the API has never seen. Published: it joins the JWKS, in front of the older keys, or
// alone when `retire` (the end of a rotation's grace period). Not published: tokens are signed
// with it while the JWKS keeps serving the previous set (a key the API can never verify).
function switchKey(publish, retire) {
  const key = newSigningKey();
  const keys = retire ? [key] : [key, ...state.published];
  const handler = buildProvider(keys).callback();
  state.tokenHandler = handler;
  if (publish) {
    state.published = keys;
    state.jwksHandler = handler;
  }
  return key.kid;
}

function sendJson(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

function isAdmin(req) {
  const expected = Buffer.from(`Bearer ${adminToken}`);
  const given = Buffer.from(req.headers.authorization ?? '');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

function admin(req, res, url) {
  if (!isAdmin(req)) {
    return sendJson(res, 401, { error: 'unauthorized', error_description: 'test admin token required' });
  }
  if (req.method === 'POST' && url.pathname === '/__test__/keys') {
    const publish = url.searchParams.get('publish') !== 'false';
    const retire = url.searchParams.get('retire') === 'true';
    return sendJson(res, 200, { kid: switchKey(publish, retire), published: publish, retired: retire });
  }
  if (req.method === 'GET' && url.pathname === '/__test__/stats') {
    return sendJson(res, 200, {
      jwks_requests: state.jwksRequests,
      token_requests: state.tokenRequests,
      last_grant: state.lastGrant,
    });
  }
  return sendJson(res, 404, { error: 'not_found', error_description: 'no such test route' });
}

const server = createServer((req, res) => {
  let url;
  try {
    url = new URL(req.url, issuer);
  } catch {
    return sendJson(res, 400, { error: 'invalid_request', error_description: 'bad request target' });
  }
  if (url.pathname === MOUNT || url.pathname.startsWith(`${MOUNT}/`)) {
    // Mounted under a prefix: oidc-provider routes on the path below it and rebuilds its own
    // URLs (discovery, jwks_uri) from originalUrl, so both must be set.
    req.originalUrl = req.url;
    req.url = req.url.slice(MOUNT.length) || '/';
    if (url.pathname === `${MOUNT}/jwks`) {
      state.jwksRequests += 1;
      return state.jwksHandler(req, res);
    }
    if (url.pathname === `${MOUNT}/token`) {
      state.tokenRequests += 1;
    }
    return state.tokenHandler(req, res);
  }
  if (url.pathname.startsWith('/__test__/')) {
    return admin(req, res, url);
  }
  return sendJson(res, 404, { error: 'not_found', error_description: 'not an endpoint of this server' });
});

server.listen(port, '127.0.0.1', () => {
  console.log(`interop test provider (oidc-provider, TEST ONLY) issuer ${issuer}`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
}
