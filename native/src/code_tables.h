// Code tables. TypeScript picks an op of a family (unary, binary, reductions, in-place updates, ...) or a dtype by
// a number; each family is defined once, here in native code, as an array of entries whose index is the code and
// whose `name` is what TypeScript calls it. The addon exports every table's names in code order
// (exports.codeTables) and TypeScript builds its name -> code maps from them when the addon loads
// (src/tensor/native-codes.ts), so the two sides cannot drift; bounds are the tables' own sizes.
#pragma once

#include <napi.h>

#include <cstddef>
#include <stdexcept>
#include <string>

namespace mm {

// The entry for `code`; a code outside the table is an error naming the family and the codes it has.
template <typename Entry, size_t N>
const Entry& tableEntry(const Entry (&table)[N], int code, const char* family) {
  if (code < 0 || static_cast<size_t>(code) >= N) {
    throw std::invalid_argument(std::string("unknown ") + family + " code " + std::to_string(code) + " (expected 0 to " +
                                std::to_string(N - 1) + ")");
  }
  return table[code];
}

// The name errors are reported under: the entry's, or the family's for a code outside the table (which
// tableEntry then refuses).
template <typename Entry, size_t N>
const char* tableName(const Entry (&table)[N], int code, const char* family) {
  return code >= 0 && static_cast<size_t>(code) < N ? table[code].name : family;
}

// Sets exports.codeTables[family] to the table's names in code order.
template <typename Entry, size_t N>
void exportCodeTable(Napi::Env env, Napi::Object exports, const char* family, const Entry (&table)[N]) {
  Napi::Object tables = exports.Has("codeTables") ? exports.Get("codeTables").As<Napi::Object>() : Napi::Object::New(env);
  Napi::Array names = Napi::Array::New(env, N);
  for (size_t i = 0; i < N; i++) names.Set(static_cast<uint32_t>(i), Napi::String::New(env, table[i].name));
  tables.Set(family, names);
  exports.Set("codeTables", tables);
}

}  // namespace mm
