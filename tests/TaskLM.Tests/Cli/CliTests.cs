// The `tasklm` program as a user meets it: help, errors, quickstart.
namespace TaskLM.Tests.Cli;

public class CliTests
{
    [Fact]
    public void HelpListsEveryVerbWithOneLineEach()
    {
        var r = CliRunner.Run("--help");
        Assert.Equal(0, r.ExitCode);
        foreach (string verb in new[] { "env", "quickstart" })
            Assert.Matches($@"(?m)^\s+{verb}\s+\S", r.Stdout);
    }

    [Fact]
    public void BadDeviceIsOneLineErrorWithNonZeroExit()
    {
        var r = CliRunner.Run("env", "--device", "tpu");
        Assert.Equal(1, r.ExitCode);
        Assert.Equal("error: unknown device 'tpu': use auto, cpu, cuda or cuda:N", r.Stderr.Trim());

        var v = CliRunner.Run("env", "--device", "tpu", "--verbose");
        Assert.Equal(1, v.ExitCode);
        Assert.Contains("ResolveDevice", v.Stderr); // stack trace only with --verbose
    }

    [Fact]
    public void QuickstartLossFalls()
    {
        var r = CliRunner.Run("quickstart", "--steps", "200", "--device", "cpu");
        Assert.True(r.ExitCode == 0, r.Stderr + r.Stdout);
        Assert.Matches(@"loss fell from 4\.\d+ to [23]\.\d+", r.Stdout);
    }
}
