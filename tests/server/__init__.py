"""Tests of golembot.server (a package so helper imports and module names stay unambiguous)."""
