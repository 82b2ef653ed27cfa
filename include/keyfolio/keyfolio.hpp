// keyfolio/keyfolio.hpp: the whole public API in one include.
#pragma once

#include <keyfolio/account.hpp>
#include <keyfolio/account_id.hpp>
#include <keyfolio/account_manager.hpp>
#include <keyfolio/backends/memory.hpp>
#include <keyfolio/backends/postgres.hpp>
#include <keyfolio/backends/sqlite.hpp>
#include <keyfolio/batch_check.hpp>
#include <keyfolio/bundle.hpp>
#include <keyfolio/credentials.hpp>
#include <keyfolio/error.hpp>
#include <keyfolio/exchange_catalog.hpp>
#include <keyfolio/key_source.hpp>
#include <keyfolio/portfolio.hpp>
#include <keyfolio/portfolio_connector.hpp>
#include <keyfolio/secret.hpp>
#include <keyfolio/storage.hpp>
#include <keyfolio/subscription.hpp>
#include <keyfolio/version.hpp>
#include <keyfolio/wire/coinapi_ems.hpp>
#include <keyfolio/wire/coinstats.hpp>
