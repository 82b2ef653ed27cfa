// keyfolio/backends/memory.hpp: the in-memory StorageBackend.
//
// Holds everything in the process's memory and forgets it when the last
// reference goes: for tests, for downstream projects' unit tests, and for
// trying keyfolio out. Several AccountManagers sharing one memory backend
// behave like several processes sharing a database, change feed included
// (handlers run on the writer's thread, after the write committed).
//
// Safe for concurrent use; never throws.
#pragma once

#include <keyfolio/export.hpp>
#include <keyfolio/storage.hpp>

#include <memory>

namespace keyfolio {

KEYFOLIO_EXPORT std::shared_ptr<StorageBackend> make_memory_backend();

}  // namespace keyfolio
