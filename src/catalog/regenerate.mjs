#!/usr/bin/env node
// Regenerates keyfolio's built-in exchange catalog from the npm package `ccxt`.
//
//   node src/catalog/regenerate.mjs [ccxt-version]      (default: latest)
//
// Writes, relative to the repository root:
//   src/catalog/exchanges.json                  the catalog compiled into the library
//   tests/data/ccxt_required_credentials.json   ccxt's requiredCredentials, verbatim,
//                                               which the tests compare the catalog against
//
// This is a maintenance tool: the build never runs it and needs neither node
// nor network. Field definitions and the aliases other ecosystems use are
// curated here; everything per exchange (ids, names, required fields, logos)
// comes from ccxt.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const wanted = process.argv[2] ?? 'latest';

// The credential fields ccxt knows, in ccxt's order. `secret` says whether a
// value must be hidden when shown to a person; every value is encrypted at rest
// either way. Aliases match case-insensitively.
const fields = [
  { key: 'apiKey', name: 'API Key', secret: true,
    aliases: ['PublicApiKey', 'api_key', 'accessKey', 'access_key'] },
  { key: 'secret', name: 'API Secret', secret: true,
    aliases: ['apiSecret', 'api_secret', 'secretKey', 'secret_key', 'PrivateApiKey'] },
  { key: 'uid', name: 'User ID', secret: false, aliases: ['userId', 'user_id'] },
  { key: 'accountId', name: 'Account ID', secret: false, aliases: ['account_id'] },
  { key: 'login', name: 'Login', secret: false, aliases: ['username'] },
  { key: 'password', name: 'Passphrase', secret: true,
    aliases: ['passphrase', 'apiPassphrase', 'api_passphrase'] },
  { key: 'twofa', name: '2FA Secret', secret: true, aliases: ['2fa', 'totp'] },
  { key: 'privateKey', name: 'Private Key', secret: true, aliases: ['private_key'] },
  { key: 'walletAddress', name: 'Wallet Address', secret: false,
    aliases: ['wallet_address', 'address'] },
  { key: 'token', name: 'Token', secret: true, aliases: ['accessToken', 'access_token'] },
];

// Exchange ids other ecosystems use (CoinAPI EMS's upper-case ids, former ccxt
// ids) for exchanges whose ccxt id is spelled differently. Ids that differ only
// in case need no alias: exchange ids match case-insensitively.
const exchangeAliases = {
  okx: ['OKEX', 'OKEX5'],
  htx: ['HUOBI', 'HUOBIPRO'],
  gate: ['GATEIO'],
  binanceusdm: ['BINANCEFTS'],
  binancecoinm: ['BINANCEFTSC'],
  krakenfutures: ['KRAKENFTS'],
  kucoinfutures: ['KUCOINFTS'],
  coinbaseexchange: ['COINBASEPRO', 'GDAX'],
  woo: ['WOOX'],
};

// JSON with one line per array element or object member at the second level,
// so that a regeneration shows up in a diff as the exchanges that changed.
function oneEntryPerLine(top) {
  const lines = Object.entries(top).map(([k, v]) => {
    if (Array.isArray(v)) {
      return `  ${JSON.stringify(k)}: [\n${v.map((e) => `    ${JSON.stringify(e)}`).join(',\n')}\n  ]`;
    }
    if (v !== null && typeof v === 'object') {
      const members = Object.entries(v).map(([mk, mv]) => `    ${JSON.stringify(mk)}: ${JSON.stringify(mv)}`);
      return `  ${JSON.stringify(k)}: {\n${members.join(',\n')}\n  }`;
    }
    return `  ${JSON.stringify(k)}: ${JSON.stringify(v)}`;
  });
  return `{\n${lines.join(',\n')}\n}\n`;
}

const work = mkdtempSync(join(tmpdir(), 'keyfolio-ccxt-'));
try {
  execFileSync('npm', ['install', '--silent', '--no-audit', '--no-fund', `ccxt@${wanted}`],
               { cwd: work, stdio: ['ignore', 'ignore', 'inherit'] });
  const ccxt = createRequire(join(work, 'package.json'))('ccxt');

  const known = new Set(fields.map((f) => f.key));
  const exchanges = [];
  const raw = {};
  for (const id of [...ccxt.exchanges].sort()) {
    const exchange = new ccxt[id]();
    const rc = exchange.requiredCredentials;
    for (const k of Object.keys(rc)) {
      if (!known.has(k)) throw new Error(`ccxt ${id}: unknown credential field ${k}; add it to fields`);
    }
    raw[id] = rc;
    const entry = {
      id,
      name: exchange.name ?? id,
      required: fields.map((f) => f.key).filter((k) => rc[k] === true),
    };
    const logo = exchange.urls?.logo;
    if (typeof logo === 'string' && logo.startsWith('https://')) entry.icon = logo;
    if (exchangeAliases[id]) entry.aliases = exchangeAliases[id];
    exchanges.push(entry);
  }
  for (const id of Object.keys(exchangeAliases)) {
    if (!raw[id]) throw new Error(`alias target ${id} is not a ccxt exchange any more`);
  }

  const catalog = { format: 1, source: `ccxt ${ccxt.version}`, fields, exchanges };
  writeFileSync(join(root, 'src/catalog/exchanges.json'), oneEntryPerLine(catalog));
  writeFileSync(join(root, 'tests/data/ccxt_required_credentials.json'),
                oneEntryPerLine({ ccxt: ccxt.version, requiredCredentials: raw }));
  console.log(`keyfolio catalog: ${exchanges.length} exchanges from ccxt ${ccxt.version}`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
