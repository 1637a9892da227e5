# Turns every sql/<name>.sql into `inline constexpr std::string_view <name> = R"...";`
# inside namespace harmony::sql, so templates live as real .sql files but ship inside the binaries.
file(GLOB files ${SQL_DIR}/*.sql)
list(SORT files)
set(out "// Generated from sql/*.sql by cmake/embed_sql.cmake. Do not edit.\n#pragma once\n#include <string_view>\nnamespace harmony::sql {\n")
foreach(f ${files})
  get_filename_component(name ${f} NAME_WE)
  file(READ ${f} body)
  string(APPEND out "inline constexpr std::string_view ${name} = R\"harmonysql(${body})harmonysql\";\n")
endforeach()
string(APPEND out "}  // namespace harmony::sql\n")
file(WRITE ${OUT}.tmp "${out}")
execute_process(COMMAND ${CMAKE_COMMAND} -E copy_if_different ${OUT}.tmp ${OUT})
