// The write transaction of one batch on a connection's prepared statements.
#pragma once

#include <keyfolio/error.hpp>

#include "backends/sqlite/connection.hpp"
#include "backends/sqlite/statement.hpp"

namespace keyfolio::detail::sqlite {

// Rolls back unless committed.
class Transaction {
 public:
  explicit Transaction(Connection& c) : c_(c) {}
  ~Transaction() {
    if (open_) Use(c_.rollback).step();
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  Result<void> begin() {
    const int rc = Use(c_.begin).step();
    if (rc != SQLITE_DONE) return c_.fail("starting a write", rc);
    open_ = true;
    return {};
  }
  Result<void> commit() {
    const int rc = Use(c_.commit).step();
    if (rc != SQLITE_DONE) return c_.fail("committing", rc);
    open_ = false;
    return {};
  }

 private:
  Connection& c_;
  bool open_ = false;
};

}  // namespace keyfolio::detail::sqlite
