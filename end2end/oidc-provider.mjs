// A real OpenID provider for the tests (npm's certified `oidc-provider`), with one client
// (the console) and accounts whose `groups` claim the console maps to roles.
//
//   node end2end/oidc-provider.mjs PORT REDIRECT_URI[,REDIRECT_URI...] CLIENT_SECRET
//
// Its development sign-in form takes any password: the account is the name typed.
// It signs with a fresh key at every start (so a restart is a key rotation). Prints
// "ready <issuer>" once it listens.
import Provider from 'oidc-provider';

const [port, redirects, secret] = process.argv.slice(2);
if (!port || !redirects || !secret) {
  console.error('usage: oidc-provider.mjs PORT REDIRECT_URI[,...] CLIENT_SECRET');
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}`;

// Who is in which group.
const GROUPS = {
  alice: ['sre-leads', 'everyone'],
  bob: ['sre', 'everyone'],
  carol: ['marketing', 'everyone'],
};

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'gatewarden',
      client_secret: secret,
      redirect_uris: redirects.split(','),
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  pkce: { required: () => true },
  scopes: ['openid', 'profile', 'email', 'groups'],
  claims: {
    openid: ['sub'],
    profile: ['preferred_username', 'name'],
    email: ['email'],
    groups: ['groups'],
  },
  // Put the scopes' claims in the ID token itself (not only behind userinfo).
  conformIdTokenClaims: false,
  cookies: { keys: ['gatewarden test provider cookie key'] },
  async findAccount(_ctx, id) {
    return {
      accountId: id,
      async claims() {
        return {
          sub: `sub-${id}`,
          preferred_username: id,
          name: id,
          email: `${id}@example.test`,
          groups: GROUPS[id] ?? [],
        };
      },
    };
  },
});
// Over plain http on loopback: the provider's own checks want https otherwise.
provider.proxy = false;

const server = provider.listen(Number(port), '127.0.0.1', () => {
  console.log(`ready ${issuer}`);
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
