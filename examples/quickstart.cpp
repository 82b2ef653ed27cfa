// quickstart: keyfolio's persistent setup in one page.
//
// Opens (or creates) an encrypted account store in a SQLite file, adds or
// updates two accounts on one exchange told apart by tags — one through the
// typed API, one through a CoinAPI EMS request body — reads credentials the
// way a trading host does before signing a request, and prints a redacted
// listing; then connects the main account as a tracked portfolio, syncs its
// holdings from a static balance source and prints their value. Run it
// again: the accounts are updated, their versions grow, and the portfolio is
// found as existing.
//
//   quickstart [STORE_FILE]      default: keyfolio-demo/keyfolio.db
#include <keyfolio/keyfolio.hpp>
#include <keyfolio/testing/static_sources.hpp>

#include <filesystem>
#include <iostream>

namespace {

int fail(const keyfolio::Error& error) {
  std::cerr << "quickstart: " << error.message() << '\n';
  return 1;
}

// Steps 1 to 5: accounts, through the typed API and the EMS wire format.
int accounts_tour(keyfolio::AccountManager& accounts) {
  // 1. The typed API: field names in any spelling the catalog knows.
  keyfolio::Credentials main_keys;
  main_keys.add("apiKey", keyfolio::SecretString("demo-main-api-key")).value();
  main_keys.add("apiSecret", keyfolio::SecretString("demo-main-api-secret")).value();
  auto main_result = accounts.upsert("BINANCE/main", std::move(main_keys));
  if (!main_result) return fail(main_result.error());
  std::cout << "BINANCE/main " << (main_result->created ? "created" : "updated") << ", version "
            << main_result->version << '\n';

  // 2. A CoinAPI EMS add-or-update body, as a host's HTTP endpoint receives it.
  const auto response = keyfolio::wire::coinapi_ems::post_accounts(accounts, R"({
    "exchange_id": "BINANCE/hedging",
    "parameters": [{"key": "PublicApiKey", "value": "demo-hedging-api-key"},
                   {"key": "PrivateApiKey", "value": "demo-hedging-api-secret"}]})");
  std::cout << "POST /v1/accounts -> " << response.status << ' ' << response.body << "\n\n";

  // 3. What a trading host does before signing a request: a lookup in memory,
  // no decryption, no I/O.
  auto account = accounts.get("binance/hedging");
  if (!account) return fail(account.error());
  const keyfolio::SecretString* api_key = (*account)->credentials.find("apiKey");
  std::cout << "signing with the " << api_key->size() << "-byte API key of " << (*account)->id
            << " (printed: " << *api_key << ")\n\n";

  // 4. Bad input gets a clear error and changes nothing.
  keyfolio::Credentials incomplete;
  incomplete.add("apiKey", keyfolio::SecretString("demo-okx-key")).value();
  if (auto rejected = accounts.upsert("OKX/desk", std::move(incomplete)); !rejected) {
    std::cout << "rejected: " << rejected.error().message() << "\n\n";
  }

  // 5. A listing never shows secrets.
  std::cout << "accounts:\n";
  for (const auto& summary : accounts.list()) {
    std::cout << "  " << summary.id << "  version " << summary.version << "  fields";
    for (const auto& field : summary.fields) std::cout << ' ' << field;
    std::cout << "  fingerprint " << summary.fingerprint.substr(0, 16) << "...\n";
  }
  std::cout << "\nGET /v1/accounts -> " << keyfolio::wire::coinapi_ems::accounts_body(accounts) << '\n';

  return 0;
}

// Step 6: a tracked portfolio, its holdings and their value.
int portfolio_tour(keyfolio::AccountManager& accounts) {
  // 6. A tracked portfolio (CoinStats-style): the same API key as BINANCE/main,
  // so the portfolio links that account instead of storing it twice.
  keyfolio::PortfolioConnector portfolios(accounts);
  keyfolio::Credentials connection;
  connection.add("apiKey", keyfolio::SecretString("demo-main-api-key")).value();
  connection.add("apiSecret", keyfolio::SecretString("demo-main-api-secret")).value();
  auto connected = portfolios.connect({"binance", std::move(connection), "Main trading"});
  if (!connected) return fail(connected.error());
  std::cout << "\nportfolio " << connected->portfolio_id << " on " << connected->account << ": "
            << (connected->status == keyfolio::ConnectResult::Status::connected ? "connected" : "existing") << '\n';

  // A real host fetches balances and prices from exchanges; the demo uses
  // static tables.
  keyfolio::testing::StaticBalanceSource balances;
  balances.set("binance/main", {{"BTC", 0.42}, {"ETH", 3.5}, {"USDT", 1250}, {"DEMOCOIN", 100}});
  keyfolio::testing::StaticPriceSource prices("USD");
  prices.set("BTC", 64000).set("ETH", 3100).set("USDT", 1);
  if (auto synced = portfolios.sync(connected->portfolio_id, balances); !synced) return fail(synced.error());
  auto coins = portfolios.coins(connected->portfolio_id, prices);
  if (!coins) return fail(coins.error());
  for (const auto& coin : *coins) {
    std::cout << "  " << coin.asset << ' ' << coin.amount;
    if (coin.value) {
      std::cout << " x " << *coin.price << " = " << *coin.value << ' ' << prices.quote_currency() << '\n';
    } else {
      std::cout << " (no price)\n";
    }
  }
  auto value = portfolios.value(connected->portfolio_id, prices);
  if (!value) return fail(value.error());
  std::cout << "  value " << value->total << ' ' << value->quote_currency << " (" << value->unpriced.size()
            << " asset without a price), " << portfolios.snapshots(connected->portfolio_id).value().size()
            << " snapshots kept\n";

  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::filesystem::path store = argc > 1 ? argv[1] : "keyfolio-demo/keyfolio.db";
  if (store.has_parent_path()) {
    std::error_code ec;
    std::filesystem::create_directories(store.parent_path(), ec);
    std::filesystem::permissions(store.parent_path(), std::filesystem::perms::owner_all, ec);
  }

  auto backend = keyfolio::make_sqlite_backend(store);
  if (!backend) return fail(backend.error());
  // A real host asks its operator for the passphrase (or uses a key from its
  // KMS); the demo uses a fixed one and the cheaper "interactive" Argon2id cost.
  const auto key = keyfolio::KeySource::passphrase(keyfolio::SecretString("demo passphrase, not for real keys"),
                                                   keyfolio::KdfCost::interactive());
  auto opened = keyfolio::AccountManager::open(*backend, key);
  if (!opened) return fail(opened.error());
  keyfolio::AccountManager& accounts = *opened;
  std::cout << "keyfolio " << keyfolio::version_string << ": store " << (*backend)->describe() << ", "
            << accounts.size() << " accounts\n\n";

  if (int failed = accounts_tour(accounts)) return failed;
  if (int failed = portfolio_tour(accounts)) return failed;

  const auto memory = keyfolio::secure_memory_stats();
  std::cout << "\nsecure memory: " << memory.live_secrets << " secrets in " << memory.reserved_bytes << " bytes, "
            << (memory.fully_locked() ? "all locked in RAM" : "NOT all locked in RAM") << '\n';
  return 0;
}
