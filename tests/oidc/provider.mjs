// A real OpenID provider (the certified `oidc-provider` package) for otpd's integration tests.
//
//   node provider.mjs            (settings from the environment, see below)
//
// OIDC_PORT  port to listen on at 127.0.0.1 (0 = any; a restart passes the old port so the issuer
//            URL stays the same)
// OIDC_KEYS  comma-separated PEM private keys (RSA or P-256) to sign with; each key's kid is its
//            file name without `.pem`. Restarting with another list is a key rotation.
//
// Once listening it prints one JSON line `{"issuer": "..."}` on stdout. Clients (secrets are test
// values): `app` gets tokens with grant_type=client_credentials; `otpd` introspects. A client asks
// for a token for a resource server by its resource indicator:
//   https://otpd.test/rs256  JWT (at+jwt) signed RS256, aud `otpd`
//   https://otpd.test/es256  JWT signed ES256, aud `otpd`
//   https://otpd.test/opaque opaque token, aud `otpd`, for introspection
//   https://payments.test    JWT signed RS256, aud `payments`
// A client_credentials token is about the client; the header `x-test-subject` on the token request
// makes it about that user instead (its `sub`), and `x-test-claims` (a JSON object) adds claims.
import { createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { basename } from 'node:path';
import Provider from 'oidc-provider';

const SCOPES = [
  'openid',
  'user:otp:create',
  'user:otp:verify',
  'user:otp:sendmail',
  'user:device-totps:create',
  'user:device-totps:create-after-login',
  'user:users.pin:update',
  'user:users.pin:check',
  'user:users.password:check',
  'user:user:delete',
];

const RESOURCES = {
  'https://otpd.test/rs256': { audience: 'otpd', accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } },
  'https://otpd.test/es256': { audience: 'otpd', accessTokenFormat: 'jwt', jwt: { sign: { alg: 'ES256' } } },
  'https://otpd.test/opaque': { audience: 'otpd', accessTokenFormat: 'opaque' },
  'https://payments.test': { audience: 'payments', accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } },
};

function signingKeys(list) {
  return list.split(',').filter(Boolean).map((path) => {
    const jwk = createPrivateKey(readFileSync(path)).export({ format: 'jwk' });
    const kid = basename(path, '.pem');
    return { ...jwk, kid, use: 'sig', alg: jwk.kty === 'EC' ? 'ES256' : 'RS256' };
  });
}

const server = createServer();
await new Promise((resolve) => server.listen(Number(process.env.OIDC_PORT || 0), '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  jwks: { keys: signingKeys(process.env.OIDC_KEYS || '') },
  clients: [
    {
      client_id: 'app',
      client_secret: 'app-secret',
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      scope: SCOPES.join(' '),
    },
    {
      client_id: 'otpd',
      client_secret: 'otpd-introspection-secret',
      grant_types: [],
      redirect_uris: [],
      response_types: [],
    },
  ],
  scopes: SCOPES,
  ttl: { AccessToken: 600, ClientCredentials: 600 },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    // otpd's client may introspect any token; a token's own client may revoke it.
    introspection: { enabled: true, allowedPolicy: (ctx, client, token) => client.clientId === 'otpd' || client.clientId === token.clientId },
    revocation: { enabled: true, allowedPolicy: (ctx, client, token) => client.clientId === token.clientId },
    resourceIndicators: {
      enabled: true,
      defaultResource: (_ctx, _client, oneOf) => oneOf,
      useGrantedResource: () => false,
      getResourceServerInfo(_ctx, resource) {
        const server = RESOURCES[resource];
        if (!server) throw new Provider.errors.InvalidTarget();
        return { scope: SCOPES.join(' '), accessTokenTTL: 600, ...server };
      },
    },
  },
  extraTokenClaims(ctx) {
    const subject = ctx?.get('x-test-subject');
    const claims = ctx?.get('x-test-claims');
    if (!subject && !claims) return undefined;
    return { ...(claims ? JSON.parse(claims) : {}), ...(subject ? { sub: subject } : {}) };
  },
  formats: {
    customizers: {
      // A JWT access token's `sub` is the client unless the test asked for a user.
      jwt(_ctx, token, jwt) {
        if (token.extra?.sub) jwt.payload.sub = token.extra.sub;
      },
    },
  },
});
provider.on('server_error', (_ctx, err) => console.error('oidc-provider server_error', err));

server.on('request', provider.callback());
process.on('SIGTERM', () => process.exit(0));
console.log(JSON.stringify({ issuer }));
