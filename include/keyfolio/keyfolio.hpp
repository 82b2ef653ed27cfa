// keyfolio/keyfolio.hpp: the whole public API in one include.
#pragma once

#include <keyfolio/account_id.hpp>
#include <keyfolio/credentials.hpp>
#include <keyfolio/error.hpp>
#include <keyfolio/exchange_catalog.hpp>
#include <keyfolio/secret.hpp>
#include <keyfolio/version.hpp>
