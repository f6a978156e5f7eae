if __name__ == "__main__":
    from reslab.cli import main
    raise SystemExit(main())
