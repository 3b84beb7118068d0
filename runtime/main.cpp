#include "runtime/cli.hpp"

int main(int argc, char** argv) {
  return meterflow::runtime::main_entry(argc, argv);
}
