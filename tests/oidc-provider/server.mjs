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
//     "dpop_nonces": true,    // DPoP (RFC 9449) proofs must carry the server's nonce
//     "tls": {                // optional: HTTPS and mutual TLS (RFC 8705)
//       "cert_pem": "...",    // the server's certificate (for 127.0.0.1) and its key
//       "key_pem": "...",
//       "ca_pem": "...",      // the CA client certificates must chain to (tls_client_auth)
//       "mtls_alias": true    // also listen on a second port, published as
//     }                       //   mtls_endpoint_aliases.token_endpoint (RFC 8705 §5)
//   }
// The server listens on 127.0.0.1 on a port the OS picks and, once it accepts requests,
// prints ONE line on stdout: {"issuer":"http://127.0.0.1:PORT","port":PORT}. With "tls",
// the issuer is https://127.0.0.1:PORT, every connection is asked for a client
// certificate (not required: the provider decides per client), oidc-provider's
// features.mTLS is on (tls_client_auth, self_signed_tls_client_auth, certificate-bound
// tokens), and with "mtls_alias" the ready line also has "mtls_port"; each request on
// the alias listener is logged on stderr as "mtls-alias: METHOD PATH". Everything
// else (oidc-provider's notices, request errors) goes to stderr. It exits when its
// standard input closes, so it never outlives the test process that started it.

import { X509Certificate, generateKeyPair, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
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

const tls = config.tls;
// Node asks for a client certificate and accepts any (rejectUnauthorized: false):
// oidc-provider decides per client whether and which one is needed, and
// certificateAuthorized says whether it chains to ca_pem.
const tlsOptions = tls && {
  cert: tls.cert_pem,
  key: tls.key_pem,
  ca: tls.ca_pem,
  requestCert: true,
  rejectUnauthorized: false,
};

async function listen(server) {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server.address().port;
}

const httpServer = tls ? createTlsServer(tlsOptions) : createServer();
const port = await listen(httpServer);
const issuer = `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;
const aliasServer = tls?.mtls_alias ? createTlsServer(tlsOptions) : undefined;
const mtlsPort = aliasServer ? await listen(aliasServer) : undefined;

// The peer's certificate on this request's connection, or undefined.
function peerCertificate(ctx) {
  const peer = ctx.socket.getPeerCertificate?.();
  return peer?.raw ? new X509Certificate(peer.raw) : undefined;
}

// X509Certificate.subject is one "TYPE=value" per line, most significant first;
// RFC 8705 §2.1.2 registers the RFC 4514 string: least significant first, commas.
function subjectDn(certificate) {
  return certificate.subject.split('\n').filter(Boolean).reverse().join(',');
}

// subjectAltName: "DNS:a, IP Address:127.0.0.1, URI:…, email:…".
function subjectAltNames(certificate, type) {
  return (certificate.subjectAltName ?? '')
    .split(', ')
    .filter((entry) => entry.startsWith(`${type}:`))
    .map((entry) => entry.slice(type.length + 1));
}

const mTLS = tls
  ? {
      enabled: true,
      certificateBoundAccessTokens: true,
      tlsClientAuth: true,
      selfSignedTlsClientAuth: true,
      // oidc-provider 9 takes a PEM string or a crypto.X509Certificate.
      getCertificate: peerCertificate,
      certificateAuthorized: (ctx) => ctx.socket.authorized === true,
      certificateSubjectMatches: (ctx, property, expected) => {
        const certificate = peerCertificate(ctx);
        if (!certificate) return false;
        switch (property) {
          case 'tls_client_auth_subject_dn':
            return subjectDn(certificate) === expected;
          case 'tls_client_auth_san_dns':
            return subjectAltNames(certificate, 'DNS').includes(expected);
          case 'tls_client_auth_san_ip':
            return subjectAltNames(certificate, 'IP Address').includes(expected);
          case 'tls_client_auth_san_uri':
            return subjectAltNames(certificate, 'URI').includes(expected);
          case 'tls_client_auth_san_email':
            return subjectAltNames(certificate, 'email').includes(expected);
          default:
            throw new Error(`unexpected certificate property ${property}`);
        }
      },
    }
  : { enabled: false };

const provider = new Provider(issuer, {
  clients: (config.clients ?? []).map((client) => ({
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    ...client,
  })),
  jwks: await keysReady,
  scopes: [...scopes],
  clientAuthMethods: [
    'client_secret_basic',
    'client_secret_post',
    'private_key_jwt',
    ...(tls ? ['tls_client_auth', 'self_signed_tls_client_auth'] : []),
  ],
  // Extra discovery members: the mTLS alias of the token endpoint (RFC 8705 §5).
  ...(aliasServer
    ? {
        discovery: {
          mtls_endpoint_aliases: { token_endpoint: `https://127.0.0.1:${mtlsPort}/token` },
        },
      }
    : {}),
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
    mTLS,
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
    const detail = err.error_detail ? ` (${err.error_detail})` : '';
    console.error(`oidc-provider ${event}: ${err.status ?? ''} ${err.message}: ${err.error_description ?? ''}${detail}`);
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

const callback = provider.callback();
httpServer.on('request', callback);
aliasServer?.on('request', (req, res) => {
  console.error(`mtls-alias: ${req.method} ${req.url}`);
  callback(req, res);
});

process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
process.on('SIGTERM', () => process.exit(0));

process.stdout.write(`${JSON.stringify({ issuer, port, ...(aliasServer ? { mtls_port: mtlsPort } : {}) })}\n`);
