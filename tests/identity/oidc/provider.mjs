// A real OpenID provider for tests/identity/test_oidc.py (oidc-provider, pinned by the lock
// file): one confidential client, the accounts in OIDC_ACCOUNTS, and oidc-provider's
// development login form, which takes any password. Plain http on 127.0.0.1, tests only.
import Provider from 'oidc-provider';

const env = process.env;
const issuer = `http://127.0.0.1:${env.OIDC_PORT}`;
const accounts = JSON.parse(env.OIDC_ACCOUNTS); // login -> claims

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: env.OIDC_CLIENT_ID,
      client_secret: env.OIDC_CLIENT_SECRET,
      redirect_uris: [env.OIDC_REDIRECT_URI],
      grant_types: ['authorization_code'],
      response_types: ['code'],
    },
  ],
  // scope -> the claims it releases; "groups" is the scope pacsflow asks for by default
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'given_name', 'family_name', 'preferred_username'],
    groups: ['groups'],
  },
  cookies: { keys: ['pacsflow-tests-only'] },
  features: { devInteractions: { enabled: true } },
  async findAccount(ctx, id) {
    const claims = accounts[id];
    return claims && { accountId: id, claims: async () => ({ sub: id, ...claims }) };
  },
});

provider.listen(Number(env.OIDC_PORT), '127.0.0.1', () => console.log(`listening at ${issuer}`));
