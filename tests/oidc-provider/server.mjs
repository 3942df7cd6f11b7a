// Test-only OpenID provider for m2m's interop tests: panva's oidc-provider on loopback.
//
// Configuration: a JSON document, read from the file named by the first argument or
// from the M2M_OIDC_CONFIG environment variable (tests/support/oidc_provider.rs writes
// it). Shape:
//   {
//     "clients": [ oidc-provider client metadata, e.g. { "client_id", "client_secret",
//                  "token_endpoint_auth_method", "jwks", "scope" } ],
//     "resource_servers": [ { "identifier": "https://api.m2m.test/", "scope": "api:read api:write",
//                             "access_token_ttl": 300, "signing_alg": "RS256" } ],
//     "default_resources": { "<client_id>": "<resource identifier>" },
//     "access_token_ttl": 600,
//     "dpop_nonces": true     // DPoP (RFC 9449) proofs must carry the server's nonce
//   }
// The server listens on 127.0.0.1 on a port the OS picks and, once it accepts requests,
// prints ONE line on stdout: {"issuer":"http://127.0.0.1:PORT","port":PORT}. Everything
// else (oidc-provider's notices, request errors) goes to stderr. It exits when its
// standard input closes, so it never outlives the test process that started it.

import { generateKeyPair, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { once } from 'node:events';

// stdout carries the ready line only: oidc-provider prints its notices with console.info.
console.info = console.error;
console.log = console.error;

// Key generation runs on the thread pool while oidc-provider loads.
const keysReady = signingKeys();
const { default: Provider, errors } = await import('oidc-provider');

function readConfig() {
  const path = process.argv[2];
  const text = path ? readFileSync(path, 'utf8') : process.env.M2M_OIDC_CONFIG;
  if (!text) {
    throw new Error('pass the configuration as a JSON file path argument or in M2M_OIDC_CONFIG');
  }
  return JSON.parse(text);
}

async function signingKeys() {
  // Fresh keys per run: nothing secret is committed, and every test sees a new JWKS.
  const generate = promisify(generateKeyPair);
  const [rsaPair, ecPair] = await Promise.all([
    generate('rsa', { modulusLength: 2048 }),
    generate('ec', { namedCurve: 'P-256' }),
  ]);
  const rsa = rsaPair.privateKey.export({ format: 'jwk' });
  const ec = ecPair.privateKey.export({ format: 'jwk' });
  return {
    keys: [
      { ...rsa, kid: 'rsa-1', alg: 'RS256', use: 'sig' },
      { ...ec, kid: 'ec-1', alg: 'ES256', use: 'sig' },
    ],
  };
}

const config = readConfig();
const resourceServers = new Map(
  (config.resource_servers ?? []).map((server) => [server.identifier, server]),
);
const defaultResources = config.default_resources ?? {};
const scopes = new Set(['openid', 'offline_access']);
for (const server of resourceServers.values()) {
  for (const scope of server.scope.split(' ').filter(Boolean)) scopes.add(scope);
}

const httpServer = createServer();
httpServer.listen(0, '127.0.0.1');
await once(httpServer, 'listening');
const { port } = httpServer.address();
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: (config.clients ?? []).map((client) => ({
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    ...client,
  })),
  jwks: await keysReady,
  scopes: [...scopes],
  clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'private_key_jwt'],
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  findAccount: async () => undefined,
  ttl: {
    ClientCredentials: config.access_token_ttl ?? 600,
  },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    // DPoP (RFC 9449) is on in oidc-provider 9; with dpop_nonces every proof must
    // carry the nonce the server hands out (400 use_dpop_nonce otherwise).
    dPoP: {
      enabled: true,
      ...(config.dpop_nonces
        ? { nonceSecret: randomBytes(32), requireNonce: () => true }
        : {}),
    },
    introspection: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // A client listed in default_resources gets a JWT for that API without sending `resource`.
      defaultResource: async (ctx, client, oneOf) => oneOf ?? defaultResources[client.clientId],
      getResourceServerInfo: async (ctx, identifier) => {
        const server = resourceServers.get(identifier);
        if (!server) {
          throw new errors.InvalidTarget(`unknown resource ${identifier}`);
        }
        return {
          scope: server.scope,
          audience: identifier,
          accessTokenFormat: 'jwt',
          accessTokenTTL: server.access_token_ttl ?? config.access_token_ttl ?? 600,
          jwt: { sign: { alg: server.signing_alg ?? 'RS256' } },
        };
      },
    },
  },
});

// One stderr line per failed request: the Rust harness shows them when a test fails.
for (const event of ['grant.error', 'introspection.error', 'discovery.error', 'jwks.error']) {
  provider.on(event, (ctx, err) => {
    console.error(`oidc-provider ${event}: ${err.status ?? ''} ${err.message}: ${err.error_description ?? ''}`);
  });
}
provider.on('server_error', (ctx, err) => {
  console.error(`oidc-provider server_error: ${err.stack}`);
});

// oidc-provider validates static clients on first use; do it now so that a bad client
// fails the start (exit 1, reason on stderr) instead of answering invalid_client later.
for (const { client_id: clientId } of config.clients ?? []) {
  await provider.Client.find(clientId);
}

httpServer.on('request', provider.callback());

process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
process.on('SIGTERM', () => process.exit(0));

process.stdout.write(`${JSON.stringify({ issuer, port })}\n`);
