// The tables of a keyfolio PostgreSQL store: created at the first open,
// checked at every open.
#pragma once

#include <keyfolio/error.hpp>

#include "backends/postgres/connection.hpp"

namespace keyfolio::detail::postgres {

// 'KFS1', as SQLite stores carry it in their application_id.
inline constexpr std::int64_t application_id = 0x4B465331;

// Creates the store's schema and tables in the database `c` is connected to
// when they do not exist (and target.options.create allows), or checks the
// ones that do: see make_postgres_backend for the errors. Hosts that open the
// same store at once take turns, under an advisory lock of the schema's.
Result<void> prepare_schema(PGconn* c, const Target& target);

}  // namespace keyfolio::detail::postgres
