// Registers every built-in component with its registry. Called once by the app and the tests.
#pragma once

namespace hftrain {

void register_builtins();

}  // namespace hftrain
