// quickstart: a first look at keyfolio's vocabulary.
//
// Parses a few account ids the way CoinAPI EMS spells them, shows which
// spellings name the same account, prints what the built-in catalog requires
// for a few exchanges, and validates a set of credentials.
#include <keyfolio/keyfolio.hpp>

#include <iostream>

int main() {
  const auto& catalog = keyfolio::ExchangeCatalog::builtin();
  std::cout << "keyfolio " << keyfolio::version_string << ", catalog of " << catalog.exchanges().size()
            << " exchanges from " << catalog.source() << "\n\n";

  std::cout << "Account ids:\n";
  for (const char* text : {"BITSTAMP/2574", "bitstamp:2574", "KRAKEN/JOHN", "OKEX",
                           "BINANCE/7c177641-74bd-4dbe-9b01-2497c12a5f70", "BINANSE/main", "KRAKEN/"}) {
    auto id = keyfolio::AccountId::parse(text);
    if (id) {
      std::cout << "  " << text << "  ->  exchange " << id->exchange() << ", tag "
                << (id->has_tag() ? id->tag() : "(none)") << ", canonical " << id->canonical() << '\n';
    } else {
      std::cout << "  " << text << "  ->  " << id.error().message() << '\n';
    }
  }
  const auto a = keyfolio::AccountId::parse("BITSTAMP/2574").value();
  const auto b = keyfolio::AccountId::parse("bitstamp:2574").value();
  std::cout << "  " << a << " and " << b << " are " << (a == b ? "the same account" : "different accounts")
            << "\n\nWhat exchanges require:\n";

  for (const char* exchange : {"binance", "OKEX", "kucoin", "hyperliquid", "coinbaseexchange"}) {
    const keyfolio::ExchangeInfo* info = catalog.find(exchange);
    std::cout << "  " << exchange << " (" << info->name << "):";
    for (const auto& key : info->required) std::cout << ' ' << key << " [" << catalog.find_field(key)->name << ']';
    std::cout << '\n';
  }

  std::cout << "\nValidating credentials for okx given in CoinAPI EMS field names:\n";
  keyfolio::Credentials credentials;
  credentials.add("PublicApiKey", keyfolio::SecretString("demo-key-1234")).value();
  credentials.add("PrivateApiKey", keyfolio::SecretString("demo-secret-do-not-print")).value();
  std::cout << "  stored as " << credentials << '\n';
  if (auto ok = credentials.validate(*catalog.find("okx")); !ok) std::cout << "  " << ok.error().message() << '\n';
  credentials.add("PassPhrase", keyfolio::SecretString("demo-passphrase")).value();
  if (credentials.validate(*catalog.find("okx"))) std::cout << "  with PassPhrase added: valid " << credentials << '\n';

  const auto memory = keyfolio::secure_memory_stats();
  std::cout << "\nSecure memory: " << memory.live_secrets << " secrets in " << memory.reserved_bytes
            << " bytes, " << (memory.fully_locked() ? "all locked in RAM" : "NOT all locked in RAM") << '\n';
  return 0;
}
