// The OpenID-certified provider (panva/oidc-provider, the version pinned by
// ../shared/peers/oidc-provider) configured as an upstream for Latchkey's browser tests: one
// confidential client whose redirect URI is the Latchkey app's callback, the package's own
// development login and consent pages, and end-user claims (email, name) for any login.
// Loopback only; in memory; started and stopped by tests/it/browser_upstream.rs.
//
// Environment: PORT, REDIRECT_URI, CLIENT_ID, CLIENT_SECRET.
import Provider from 'oidc-provider';

const PORT = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${PORT}`;

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: process.env.CLIENT_ID,
      client_secret: process.env.CLIENT_SECRET,
      grant_types: ['authorization_code'],
      response_types: ['code'],
      redirect_uris: [process.env.REDIRECT_URI],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  cookies: { keys: ['peer-upstream-cookie-key-not-secret-000'] },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  features: { devInteractions: { enabled: true } },
  // Any login is an account: `<login>@peer.example`, confirmed.
  findAccount: async (_ctx, id) => ({
    accountId: id,
    claims: async () => ({ sub: id, email: `${id}@peer.example`, email_verified: true, name: `Peer ${id}` }),
  }),
});

provider.listen(PORT, '127.0.0.1', () => {
  console.log(`listening ${issuer}`);
});
