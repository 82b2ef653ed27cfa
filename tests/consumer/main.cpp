// A program a keyfolio user would write: it only needs the installed headers
// and library, found through CMake or pkg-config.
#include <keyfolio/keyfolio.hpp>

#include <iostream>

int main() {
  auto id = keyfolio::AccountId::parse("KRAKEN/JOHN");
  if (!id || id->exchange() != "kraken" || id->tag() != "JOHN") {
    std::cerr << "parse failed\n";
    return 1;
  }
  keyfolio::Credentials credentials;
  if (!credentials.add("apiKey", keyfolio::SecretString("k")) ||
      !credentials.add("apiSecret", keyfolio::SecretString("s"))) {
    std::cerr << "add failed\n";
    return 1;
  }
  const auto* kraken = keyfolio::ExchangeCatalog::builtin().find(id->exchange());
  if (kraken == nullptr || !credentials.validate(*kraken)) {
    std::cerr << "validation failed\n";
    return 1;
  }
  try {
    keyfolio::AccountId::parse("NOSUCHEXCHANGE").value();
    return 1;
  } catch (const keyfolio::Exception& e) {
    if (e.code() != keyfolio::errc::invalid_exchange_id) return 1;
  }
  std::cout << "keyfolio " << keyfolio::version_string << " consumer ok: " << *id << '\n';
  return 0;
}
