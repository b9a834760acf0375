// A real OpenID Connect provider (panva/oidc-provider) on loopback for the single sign-on tests.
//
// Configured by environment: OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, OIDC_REDIRECT_URIS (comma-separated),
// OIDC_PORT (0 picks a free one). Prints "listening <issuer>" once it accepts connections.
// Accounts: any login name; the password must be "correct-horse" (anything else is refused). The
// account's claims: sub = login, email = <login>@idp.example.cn, name = "SSO <login>".
import http from "node:http";
import Provider from "oidc-provider";

const PASSWORD = "correct-horse";
const port = Number(process.env.OIDC_PORT || 0);

const server = http.createServer();
await new Promise((resolve) => server.listen(port, "127.0.0.1", resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: process.env.OIDC_CLIENT_ID,
      client_secret: process.env.OIDC_CLIENT_SECRET,
      redirect_uris: (process.env.OIDC_REDIRECT_URIS || "").split(",").filter(Boolean),
      response_types: ["code"],
      grant_types: ["authorization_code"],
      token_endpoint_auth_method: "client_secret_basic",
    },
  ],
  claims: { openid: ["sub"], email: ["email", "email_verified"], profile: ["name", "preferred_username"] },
  pkce: { required: () => false },
  features: { devInteractions: { enabled: false } },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: `${id}@idp.example.cn`, email_verified: true, name: `SSO ${id}`, preferred_username: id };
      },
    };
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  cookies: { keys: ["vetpacs-test-only-cookie-key"] },
});
provider.proxy = false;

// The interaction pages: a login form, then consent granted automatically for the requested scopes.
const page = (body) => `<!doctype html><meta charset="utf-8"><title>Test IdP</title>${body}`;
async function readForm(req) {
  let data = "";
  for await (const chunk of req) data += chunk;
  return Object.fromEntries(new URLSearchParams(data));
}

server.on("request", async (req, res) => {
  const match = req.url.match(/^\/interaction\/([^/?]+)(\/login)?/);
  if (!match) return provider.callback()(req, res);
  try {
    const details = await provider.interactionDetails(req, res);
    const { uid, prompt, params, session } = details;
    if (prompt.name === "login") {
      if (req.method === "POST" && match[2]) {
        const form = await readForm(req);
        if (form.password !== PASSWORD) {
          res.writeHead(401, { "content-type": "text/html" });
          return res.end(page(`<p id="error">wrong password</p>`));
        }
        return provider.interactionFinished(req, res, { login: { accountId: form.login } }, { mergeWithLastSubmission: false });
      }
      res.writeHead(200, { "content-type": "text/html" });
      return res.end(page(`<form method="post" action="/interaction/${uid}/login">
        <input name="login"><input name="password" type="password"><button>Sign in</button></form>`));
    }
    if (prompt.name === "consent") {
      const grant = details.grantId ? await provider.Grant.find(details.grantId) : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
      if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(" "));
      if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
      const grantId = await grant.save();
      return provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    }
    res.writeHead(400);
    res.end(`unexpected prompt ${prompt.name}`);
  } catch (err) {
    res.writeHead(500, { "content-type": "text/plain" });
    res.end(String(err));
  }
});

console.log(`listening ${issuer}`);
