// A real OpenID Connect provider for Gatehouse's SSO tests (oidc-provider, devInteractions).
//
//   node provider.js PORT
//
// Env: OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, OIDC_REDIRECT_URIS (space-separated).
// The built-in development login form accepts any password for the users below;
// consent is a second form.  Prints "ready <issuer>" once listening.
import Provider from 'oidc-provider';

const port = Number(process.argv[2] || process.env.OIDC_PORT || 9000);
const issuer = `http://127.0.0.1:${port}`;

const USERS = {
  'ada@example.com': { name: 'Ada Lovelace', groups: ['team-payments', 'gh-finance'] },
  'bob@example.com': { name: 'Bob Search', groups: ['team-search'] },
  'pat@example.com': { name: 'Pat Platform', groups: ['team-infra', 'gh-platform'] },
};

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: process.env.OIDC_CLIENT_ID || 'gatehouse',
      client_secret: process.env.OIDC_CLIENT_SECRET || 'gatehouse-secret',
      redirect_uris: (process.env.OIDC_REDIRECT_URIS || 'http://127.0.0.1/auth/callback').split(' '),
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  pkce: { required: () => true },
  // Put the requested claims into the ID token itself, as Okta and Entra do for groups.
  conformIdTokenClaims: false,
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
    groups: ['groups'],
  },
  scopes: ['openid', 'email', 'profile', 'groups'],
  features: { devInteractions: { enabled: true } },
  cookies: { keys: ['gatehouse-test-cookie-key'] },
  async findAccount(ctx, id) {
    const user = USERS[id];
    if (!user) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: id, email_verified: true, name: user.name, groups: user.groups };
      },
    };
  },
});

const server = provider.listen(port, '127.0.0.1', () => {
  console.log(`ready ${issuer}`);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
