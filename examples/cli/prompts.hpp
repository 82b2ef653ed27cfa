// Input from the operator: secret values and passphrases read from a no-echo
// prompt on the terminal or from a file descriptor, and yes/no confirmations.
// Secrets are read a byte at a time into buffers that are wiped, and handed
// over only as SecretString.
#pragma once

#include <keyfolio/keyfolio.hpp>

#include <optional>
#include <string>
#include <vector>

namespace keyfolio::cli {

// Whether `fd` is a terminal.
bool on_terminal(int fd);

// The values of `fields`: inline ones as given, the others from a no-echo
// prompt on a terminal or one line each of standard input. Throws Usage when
// standard input ends before a value.
keyfolio::Result<keyfolio::Credentials> read_fields(const std::vector<std::string>& fields,
                                                    const keyfolio::ExchangeCatalog& catalog);

// Where a passphrase comes from: a file descriptor given by an option, else
// a file named by an environment variable, else a no-echo prompt.
struct PassphraseSource {
  std::string what;       // "passphrase", "new passphrase", ...
  std::string fd_option;  // "--passphrase-fd"
  std::optional<int> fd;
  const char* file_variable;  // "KEYFOLIO_PASSPHRASE_FILE"
  bool confirm = false;       // on a prompt, ask twice
};

// The passphrase of `source`: the first line of its file descriptor or file,
// else a prompt (asked twice with `confirm`); invalid_argument when there is
// none, it is empty, or the two answers differ.
keyfolio::Result<keyfolio::SecretString> read_passphrase(const PassphraseSource& source);

// Asks `question` on the terminal; true for an answer starting with y or Y,
// false for any other answer or without a terminal.
bool confirm(const std::string& question);

}  // namespace keyfolio::cli
