/* sluice/sluice.h — the whole public API of libsluice. */
#ifndef SLUICE_SLUICE_H
#define SLUICE_SLUICE_H

#include <sluice/common.h>
#include <sluice/call.h>
#include <sluice/mock.h>
#include <sluice/policy.h>
#include <sluice/batch.h>

#endif
