# Install layout and the Debian package (CPack DEB). Included last by the top-level
# CMakeLists.txt. `cmake --install build --prefix /usr` or `cd build && cpack -G DEB` give:
#   bin/harmonylite                         the replicator
#   lib/harmonylite/libharmony.so           the extension: `.load /usr/lib/harmonylite/libharmony`
#                                           (its own directory: it is a module, not a library to
#                                           link, so it stays out of the linker's search path)
#   share/doc/harmonylite/                  README, ARCHITECTURE and docs/*.md
#   share/harmonylite/examples/             walkthrough configs, example.toml, monitoring kit
#   lib/systemd/system/harmonylite@.service the template unit (packaging/)
include(GNUInstallDirs)

install(TARGETS harmonylite RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS harmony LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}/harmonylite)
install(FILES README.md ARCHITECTURE.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(DIRECTORY docs/ DESTINATION ${CMAKE_INSTALL_DOCDIR} FILES_MATCHING PATTERN "*.md")
install(FILES examples/node-1-config.toml examples/node-2-config.toml examples/node-3-config.toml
              examples/nats-server-1.conf examples/nats-server-2.conf examples/nats-server-3.conf
              packaging/example.toml
        DESTINATION ${CMAKE_INSTALL_DATADIR}/harmonylite/examples)
if(EXISTS ${CMAKE_SOURCE_DIR}/examples/monitoring)
  install(DIRECTORY examples/monitoring DESTINATION ${CMAKE_INSTALL_DATADIR}/harmonylite/examples)
endif()
# Debian puts units shipped by packages in /lib/systemd/system (not under the /usr prefix).
install(FILES packaging/harmonylite@.service DESTINATION /lib/systemd/system)

set(CPACK_PACKAGE_NAME harmonylite)
set(CPACK_PACKAGE_VENDOR harmonylite)
set(CPACK_PACKAGE_CONTACT "harmonylite maintainers <harmonylite@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "leaderless multi-writer replication of SQLite files over NATS JetStream")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION database)
# Ship stripped binaries: RelWithDebInfo builds carry ~70 MB of debug info that no user of the
# package needs (debug builds are for developers, who build from source).
set(CPACK_STRIP_FILES ON)
# Library dependencies come from dpkg-shlibdeps (libnats3.x, libsqlite3-0, libzstd1, ...);
# nats-server is run as a child process, which shlibdeps cannot see; adduser for postinst.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "nats-server, adduser")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "sqlite3")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${CMAKE_SOURCE_DIR}/packaging/postinst
                                       ${CMAKE_SOURCE_DIR}/packaging/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
# Only the package's own files: the test and bench targets install nothing anyway.
set(CPACK_GENERATOR DEB)
include(CPack)
